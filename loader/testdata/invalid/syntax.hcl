policy "web" {
  selector = "role == 'web'"
  ingress { # ERROR: Unclosed configuration block
    action = "allow"
