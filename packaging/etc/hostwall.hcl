# /etc/hostwall/hostwall.hcl — hostwall's configuration directory.
#
# As installed, hostwall enforces nothing: no interface has a host endpoint,
# so every interface passes through untouched. Installing the package cannot
# cut anyone off.
#
# Every *.hcl, *.yaml and *.yml file here is part of one configuration
# (Calico's YAML too). The agent applies each change as soon as you save it;
# `hostwall plan` shows what a change would do first, `hostwall validate`
# checks the files without touching the kernel. Examples:
# /usr/share/doc/hostwall/examples/. Reference: man hostwall, and README.md.
#
# To protect eth0, allowing SSH (port 22 stays open anyway: the failsafe
# ports) and HTTPS from anywhere, uncomment:
#
# host_endpoint "eth0" {
#   interface = "eth0"
# }
#
# policy "web" {
#   ingress {
#     action   = "allow"
#     protocol = "tcp"
#     destination { ports = [443] }
#   }
#   egress {
#     action = "allow"
#   }
# }
