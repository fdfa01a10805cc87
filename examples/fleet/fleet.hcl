# One set of files for a whole fleet: each host enforces the endpoints whose
# node is its own name (run with --host-name, or the hostname decides).

host {
  labels = { environment = "production" }
}

host_endpoint "web-1-eth0" {
  node      = "web-1"
  interface = "eth0"
  labels    = { role = "web" }
}

host_endpoint "db-1-eth0" {
  node         = "db-1"
  interface    = "eth0"
  labels       = { role = "db" }
  expected_ips = ["10.0.2.10"]
}

network_set "app-servers" {
  labels = { tier = "app" }
  nets   = ["10.0.1.0/24", "10.0.3.0/24", "fd00:1::/64"]
}

policy "db" {
  selector = "role == 'db'"
  order    = 10
  ingress {
    action   = "allow"
    protocol = "tcp"
    source      { selector = "tier == 'app'" }
    destination { ports = [5432] }
  }
  ingress {
    action = "deny"
    source { nets = ["10.0.0.0/8"] }
  }
}

policy "web" {
  selector = "role == 'web'"
  order    = 20
  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [80, 443] }
  }
}

policy "egress-all" {
  selector = "all()"
  types    = ["egress"]
  egress {
    action = "allow"
  }
}

failsafe {
  inbound  = ["tcp:22", "udp:68", "tcp:10.0.0.0/8:9100"]
  outbound = ["udp:53", "udp:67"]
}
