failsafe {
  inbound = ["none"]
}
