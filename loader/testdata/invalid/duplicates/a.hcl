policy "web" {}
host {}
failsafe {}
