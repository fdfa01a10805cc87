host_endpoint "eth0" {
  interface = "this-name-is-far-too-long" # ERROR: Invalid interface name
}

host_endpoint "pattern" {
  interface = "eth*" # ERROR: Invalid interface name
}

host_endpoint "colon" {
  interface = "eth0:1" # ERROR: Invalid interface name
}

host_endpoint "eth1" {
  interface    = "eth1"
  expected_ips = ["10.0.0.0/8"] # ERROR: Expected IP is a network
}

network_set "office" {
  nets = [
    "198.51.100.0/24",
    "10.0.0.1/8", # ERROR: Network has host bits set
    "not-an-address", # ERROR: Invalid network
    "2001:db8::/129", # ERROR: Invalid network
  ]
  labels = { count = 3 } # ERROR: Label value must be a string
}

policy "web" {
  selector = "role == web" # ERROR: Invalid selector
  order    = "first" # ERROR: Expected a number
  ingress {
    action   = "permit" # ERROR: Invalid action
    protocol = "tcp"
    destination {
      ports = [80, "90:80", 70000, "http"] # ERROR: Invalid port
    }
  }
  ingress {
    action = "allow"
    destination {
      ports = [22] # ERROR: Ports need a protocol with ports
    }
  }
  ingress {
    action   = "allow"
    protocol = "carrier-pigeon" # ERROR: Invalid protocol
  }
  ingress {
    action = "allow"
    source {}
    source {} # ERROR: Duplicate source block
  }
  egress {
    action = "allow"
    destination { ports = [80] } # ERROR: Ports need a protocol with ports
  }
  egress {
    bogus  = 1 # ERROR: Unsupported argument
    action = "allow"
  }
  ingress { # ERROR: Missing required argument
  }
}

policy "typed" {
  types = ["ingress"] # ERROR: Rules for a direction the policy does not apply to
  egress { action = "allow" }
}

policy "bad name!" { # ERROR: Invalid name
}

failsafe {
  inbound = ["tcp:22", "icmp:1", "tcp:99999", "tcp:10.0.0.1/8:22"] # ERROR: Invalid failsafe entry
}

unknown_block "x" { # ERROR: Unsupported block type
}
