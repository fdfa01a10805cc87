tier "default" { # ERROR: The default tier cannot be declared
}

tier "t" {
  default_action = "allow" # ERROR: Invalid default action
}

settings {
  allow_ipv6_neighbor_discovery = "yes" # ERROR: Expected true or false
}

policy "fwd" { # ERROR: Pre-DNAT and untracked together
  apply_on_forward = true
  pre_dnat         = true
  do_not_track     = true
}

policy "untracked" { # ERROR: do_not_track needs apply_on_forward
  do_not_track = true
}

policy "early" { # ERROR: Pre-DNAT policy with egress
  apply_on_forward = true
  pre_dnat         = true
  egress { action = "allow" }
}

policy "typo" {
  do_not_track     = "no" # ERROR: Expected true or false
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = ["ht tp"] } # ERROR: Invalid port
  }
}

policy "p" {
  tier = "nowhere" # ERROR: Unknown tier
  ingress { # ERROR: ICMP match needs an ICMP protocol
    action = "allow"
    icmp {
      type = 8
    }
  }
  ingress { # ERROR: IP version contradicts the protocol
    action     = "allow"
    protocol   = "icmpv6"
    ip_version = 4
  }
  ingress { # ERROR: IP version contradicts a network
    action     = "allow"
    ip_version = 6
    source { not_nets = ["10.0.0.0/8"] }
  }
  ingress {
    action     = "allow"
    ip_version = 5 # ERROR: Invalid IP version
  }
  ingress {
    action   = "allow"
    protocol = "icmp"
    icmp {
      type = 300 # ERROR: Invalid ICMP type
    }
  }
  ingress {
    action = "allow"
    destination { not_ports = [22] } # ERROR: Ports need a protocol with ports
  }
}
