# This host: its name and the labels that policies select on.
host {
  name   = "web-1"
  labels = { role = "web", environment = "production" }
}

# Protect eth0. Interfaces without a host endpoint (lo, docker0, …) are
# never touched.
host_endpoint "eth0" {
  interface    = "eth0"
  labels       = { zone = "public" }
  expected_ips = ["192.0.2.10"]
}
