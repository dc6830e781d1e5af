# tcpkv on one EC2 instance, reachable from the networks you name and nobody else.
#
#   home client --TLS, TCP 10443, client certificate--> security group (allowed_client_cidrs only)
#     --> instance: Docker publishes 0.0.0.0:10443 (plain 10000 on 127.0.0.1 only)
#     --> container: tcpkv, TLS listener requiring a certificate from this module's private CA (tls.tf)
#         (TCPKV_ALLOWED_CLIENTS = the same CIDRs, TCPKV_ALLOWED_HOSTS = this instance's public IP
#          and DNS name, END only with TCPKV_SHUTDOWN_TOKEN)
#
# See docs/remote-vm.md for the walkthrough and why each layer is there.

################################################################################
# Lookups
################################################################################

# Ubuntu 24.04 LTS from Canonical's public SSM parameter, unless an AMI id is given.
data "aws_ssm_parameter" "ami" {
  count = var.ami_id == null ? 1 : 0

  name = var.ami_ssm_parameter
}

# Without a subnet, launch into the region's default VPC (and one of its default subnets).
data "aws_vpc" "default" {
  count = var.subnet_id == null ? 1 : 0

  default = true
}

data "aws_subnet" "selected" {
  count = var.subnet_id == null ? 0 : 1

  id = var.subnet_id
}

locals {
  # The TLS port, fixed in infra/remote/server.compose.yml (the plain port stays on the VM's loopback).
  tcpkv_tls_port = 10443

  # The instance metadata service the bootstrap asks for the public address (IMDSv2).
  metadata_url = "http://169.254.169.254"

  ami_id = coalesce(var.ami_id, one(data.aws_ssm_parameter.ami[*].insecure_value))
  vpc_id = var.subnet_id == null ? one(data.aws_vpc.default[*].id) : one(data.aws_subnet.selected[*].vpc_id)

  # Names the server accepts in the Host header. With an Elastic IP, Terraform knows them before
  # the instance exists; either way the bootstrap adds what IMDSv2 reports at every boot.
  known_public_hosts = var.create_eip ? [aws_eip.this[0].public_ip, aws_eip.this[0].public_dns] : []

  public_ip  = var.create_eip ? aws_eip.this[0].public_ip : aws_instance.this.public_ip
  public_dns = var.create_eip ? aws_eip.this[0].public_dns : aws_instance.this.public_dns

  # Values reach the shell script base64-encoded, so no quoting in them can break out of it.
  user_data = templatefile("${path.module}/templates/cloud-init.sh.tftpl", {
    allowed_clients_b64 = base64encode(join(",", var.allowed_client_cidrs))
    allowed_hosts_b64   = base64encode(join(",", local.known_public_hosts))
    shutdown_token_b64  = base64encode(var.shutdown_token)
    git_repo_url_b64    = base64encode(var.git_repo_url)
    git_ref_b64         = base64encode(var.git_ref)
    server_image_b64    = base64encode(var.server_image)
    node_image_b64      = base64encode(var.node_image)
    log_level           = var.log_level
    expected_public_ip  = var.create_eip ? aws_eip.this[0].public_ip : ""
    metadata_url_b64    = base64encode(local.metadata_url)
    tls_ca_cert_b64     = base64encode(tls_self_signed_cert.ca.cert_pem)
    tls_server_cert_b64 = base64encode(tls_locally_signed_cert.server.cert_pem)
    tls_server_key_b64  = base64encode(tls_private_key.server.private_key_pem)
  })
}

################################################################################
# Security group: 10443 (TLS) from allowed_client_cidrs, 22 from ssh_cidrs, nothing else in
################################################################################

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "tcpkv: TCP 10443 (TLS) from allowed_client_cidrs, TCP 22 from ssh_cidrs"
  vpc_id      = local.vpc_id

  tags = { Name = var.name }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "tcpkv" {
  for_each = toset(var.allowed_client_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "tcpkv clients ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 10443
  to_port           = 10443
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null

  tags = { Name = "${var.name}-tcpkv" }
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "SSH ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null

  tags = { Name = "${var.name}-ssh" }
}

# Outbound: apt, git, Docker Hub / the npm registry for the image build.
resource "aws_vpc_security_group_egress_rule" "all_ipv4" {
  security_group_id = aws_security_group.this.id
  description       = "All outbound IPv4"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "all_ipv6" {
  security_group_id = aws_security_group.this.id
  description       = "All outbound IPv6"
  ip_protocol       = "-1"
  cidr_ipv6         = "::/0"
}

################################################################################
# Elastic IP: allocated before the instance, so its address can go into user data
# (associating it inside aws_eip would make the instance depend on itself)
################################################################################

resource "aws_eip" "this" {
  count = var.create_eip ? 1 : 0

  domain = "vpc"

  tags = { Name = var.name }
}

resource "aws_eip_association" "this" {
  count = var.create_eip ? 1 : 0

  instance_id   = aws_instance.this.id
  allocation_id = aws_eip.this[0].id
}

################################################################################
# Instance
################################################################################

resource "aws_instance" "this" {
  ami                    = local.ami_id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  vpc_security_group_ids = [aws_security_group.this.id]
  key_name               = var.key_name

  # Needed for apt/git/Docker Hub during the bootstrap even with an Elastic IP (which replaces it).
  associate_public_ip_address = true

  user_data                   = local.user_data
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # containers (one hop further) cannot reach IMDS
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    encrypted             = true
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    delete_on_termination = true
  }

  # Burstable types: no surprise charges for CPU credits beyond the baseline.
  dynamic "credit_specification" {
    for_each = startswith(var.instance_type, "t") ? [1] : []

    content {
      cpu_credits = "standard"
    }
  }

  tags        = { Name = var.name }
  volume_tags = { Name = var.name }

  lifecycle {
    # A newer Ubuntu AMI in the SSM parameter must not replace a running server (and its data).
    # To upgrade on purpose: terraform apply -replace=aws_instance.this
    ignore_changes = [ami]
  }
}
