host {
  name   = "web-1"
  labels = { role = "web", environment = "production" }
}

host_endpoint "eth0" {
  interface    = "eth0"
  node         = "web-1"
  labels       = { zone = "public" }
  expected_ips = ["192.0.2.10", "2001:db8::10"]
}

network_set "office" {
  labels = { trusted = "true" }
  nets   = ["198.51.100.0/24", "2001:db8:1::/48", "203.0.113.7"]
}

policy "web" {
  selector = "role == 'web' && has(environment)"
  order    = 100.5
  types    = ["ingress", "egress"]
  ingress {
    action      = "allow"
    protocol    = "tcp"
    destination { ports = [80, 443, "8000:8080"] }
  }
  ingress {
    action   = "deny"
    protocol = 17
    source {
      nets     = ["10.0.0.0/8"]
      selector = "trusted == 'true'"
      ports    = [53]
    }
  }
  ingress {
    action = "log"
  }
  egress { action = "allow" }
}

failsafe {
  inbound  = ["tcp:22", "udp:68", "tcp:10.0.0.0/8:9100", "udp:[fd00::/8]:53"]
  outbound = []
}
