# Networks that rule selectors can name by label.
network_set "office" {
  labels = { trusted = "true" }
  nets   = ["198.51.100.0/24", "2001:db8:1::/48"]
}

network_set "monitoring" {
  labels = { trusted = "true", team = "ops" }
  nets   = ["203.0.113.16/28"]
}

# Web servers: HTTP and HTTPS from anywhere, SSH and metrics only from
# trusted networks, everything outbound.
policy "web" {
  selector = "role == 'web'"
  order    = 100

  ingress {
    action   = "allow"
    protocol = "tcp"
    destination { ports = [80, 443] }
  }
  ingress {
    action   = "allow"
    protocol = "tcp"
    source      { selector = "trusted == 'true'" }
    destination { ports = [22, "9100:9101"] }
  }
  ingress {
    action   = "allow"
    protocol = "icmp"
  }
  egress {
    action = "allow"
  }
}

# Log what reaches the end of the policies before the default deny drops it.
policy "log-dropped" {
  order = 1000
  ingress {
    action = "log"
  }
}
