workloads {
  interface_prefixes = [
    "", # ERROR: Empty interface prefix
    "cali*", # ERROR: Invalid interface prefix
    "l", # ERROR: Interface prefix matches lo
    "a-prefix-of-sixteen", # ERROR: Invalid interface prefix
    "ve th", # ERROR: Invalid interface prefix
    7, # ERROR: Expected a string
  ]
  to_host_action = "acept" # ERROR: Invalid to_host_action
}

workloads { # ERROR: Duplicate workloads
  interface_prefixes = ["tap"]
}

workloads { # ERROR: Missing interface_prefixes
  to_host_action = "drop"
}

workloads {
  node           = "" # ERROR: Empty node
  to_host_action = 1 # ERROR: Expected a string
}

workloads {
  node               = 5 # ERROR: Expected a string
  interface_prefixes = ["tap"]
}
