policy "web" {} # ERROR: Duplicate policy
host {} # ERROR: Duplicate host
network_set "x" {}
network_set "x" {} # ERROR: Duplicate network set
failsafe {} # ERROR: Duplicate failsafe
