# A file may hold a single policy; an empty policy selects everything.
policy "empty" {}
