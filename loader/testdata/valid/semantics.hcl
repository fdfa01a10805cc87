tier "security" {
  order          = 100
  default_action = "pass"
}

settings {
  allow_ipv6_neighbor_discovery = false
}

host_endpoint "any" {
  interface = "*"
  profiles  = ["projectcalico-default-allow"]
}

policy "guard" {
  tier = "security"
  ingress {
    action       = "pass"
    not_protocol = "udp"
    ip_version   = 4
    source {
      not_nets     = ["10.0.0.0/8"]
      not_selector = "role == 'db'"
    }
  }
  ingress {
    action   = "allow"
    protocol = "icmpv6"
    icmp {
      type = 128
    }
    not_icmp {
      type = 1
      code = 4
    }
  }
  ingress {
    action   = "deny"
    protocol = "tcp"
    destination { not_ports = ["1:1023"] }
  }
}
