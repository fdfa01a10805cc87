host_endpoint "eth0" { interface = "eth0" }

workloads {
  interface_prefixes = ["cali", "veth", "docker", "vnet", "cali0"]
  to_host_action     = "Accept"
}

workloads {
  node               = "web-1"
  to_host_action     = "return"
}

workloads {
  node               = "web-2"
  interface_prefixes = []
}
