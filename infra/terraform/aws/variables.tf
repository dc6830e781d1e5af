# Inputs of the tcpkv-on-EC2 recipe. Only three have no default: who may connect
# (allowed_client_cidrs), the END token (shutdown_token) and where the code comes from (git_repo_url).
# Copy terraform.tfvars.example to terraform.tfvars and fill them in.

################################################################################
# Who may connect
################################################################################

variable "allowed_client_cidrs" {
  description = "Client addresses (CIDRs, IPv4 or IPv6) that may reach tcpkv on TCP 10000. Used twice: in the security group and as TCPKV_ALLOWED_CLIENTS inside the server. No default on purpose: name your own address, e.g. [\"203.0.113.7/32\"]."
  type        = list(string)
  # no default: the user must say who may connect

  validation {
    condition     = length(var.allowed_client_cidrs) > 0
    error_message = "allowed_client_cidrs must name at least one CIDR, e.g. [\"203.0.113.7/32\"] (your address: curl -s https://checkip.amazonaws.com)."
  }

  validation {
    condition     = alltrue([for c in var.allowed_client_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of allowed_client_cidrs must be a CIDR such as 203.0.113.7/32 or 2001:db8::/64."
  }

  validation {
    condition     = alltrue([for c in var.allowed_client_cidrs : !can(regex("/0$", c))])
    error_message = "allowed_client_cidrs must not contain 0.0.0.0/0 or ::/0: anyone on the Internet could then write to the store. Name the networks you trust."
  }
}

variable "ssh_cidrs" {
  description = "CIDRs that may reach SSH (TCP 22). Empty (the default) opens no SSH rule at all."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrhost(c, 0)) && !can(regex("/0$", c))])
    error_message = "Every entry of ssh_cidrs must be a CIDR narrower than 0.0.0.0/0 or ::/0, e.g. 203.0.113.7/32."
  }
}

variable "key_name" {
  description = "Name of an existing EC2 key pair for SSH as user 'ubuntu'. null = no key (SSH impossible; the server still runs)."
  type        = string
  default     = null
}

################################################################################
# The server
################################################################################

variable "shutdown_token" {
  description = "Bearer token that END must carry (TCPKV_SHUTDOWN_TOKEN). At least 16 characters of A-Z a-z 0-9 . _ ~ + / - (RFC 6750 token characters); generate one with: openssl rand -hex 24"
  type        = string
  sensitive   = true

  validation {
    condition     = can(regex("^[A-Za-z0-9._~+/-]{16,256}$", var.shutdown_token))
    error_message = "shutdown_token must be 16 to 256 characters of A-Z a-z 0-9 . _ ~ + / - (try: openssl rand -hex 24)."
  }

  validation {
    condition     = !startswith(var.shutdown_token, "change-me") && !startswith(var.shutdown_token, "replace-with")
    error_message = "shutdown_token is still the example value; make one with: openssl rand -hex 24"
  }
}

variable "git_repo_url" {
  description = "HTTPS URL of the tcpkv git repository the instance clones (it builds the server image from it, or, with server_image set, only uses its infra/remote files)."
  type        = string

  validation {
    condition     = can(regex("^https://[^[:space:]'\"]+$", var.git_repo_url))
    error_message = "git_repo_url must be an https:// URL (the instance has no SSH key for git)."
  }
}

variable "git_ref" {
  description = "Branch, tag or commit of git_repo_url to deploy."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.git_ref))
    error_message = "git_ref must be a branch, tag or commit name (letters, digits, . _ / -)."
  }
}

variable "server_image" {
  description = "A released (or pushed) server image to pull and run, pinned to a version, e.g. ghcr.io/you/tcpkv-server:1.0.0. Empty (the default: no release has been published yet) = build Dockerfile.server from git_ref on the instance."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9._/:@-]*$", var.server_image))
    error_message = "server_image must be an image reference (letters, digits, . _ / : @ -)."
  }
}

variable "node_image" {
  description = "Base image for the build on the instance (NODE_IMAGE build argument of Dockerfile.server)."
  type        = string
  default     = "node:24-bookworm-slim"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/:@-]+$", var.node_image))
    error_message = "node_image must be an image reference (letters, digits, . _ / : @ -)."
  }
}

variable "log_level" {
  description = "TCPKV_LOG_LEVEL of the server (pino level)."
  type        = string
  default     = "info"

  validation {
    condition     = contains(["fatal", "error", "warn", "info", "debug", "trace", "silent"], var.log_level)
    error_message = "log_level must be one of fatal, error, warn, info, debug, trace, silent."
  }
}

variable "tls_server_names" {
  description = "More DNS names for the server's certificate (the Elastic IP and its public DNS name are always in it), e.g. a name of your own pointing at the Elastic IP."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.tls_server_names : can(regex("^[A-Za-z0-9.-]+$", n))])
    error_message = "tls_server_names must be DNS names (letters, digits, . -)."
  }
}

variable "tls_client_name" {
  description = "Common name of the client certificate written to tls/ (it appears in the server's log with each request)."
  type        = string
  default     = "home"
}

variable "tls_validity_hours" {
  description = "Validity of the server's and the client's certificates in hours (the CA's: 10 years)."
  type        = number
  default     = 24 * 397

  validation {
    condition     = var.tls_validity_hours >= 24
    error_message = "tls_validity_hours must be at least 24."
  }
}

################################################################################
# The machine and where it lives
################################################################################

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name used for the instance, its security group and tags."
  type        = string
  default     = "tcpkv"
}

variable "instance_type" {
  description = "EC2 instance type. t3.micro (2 vCPU, 1 GiB; the bootstrap adds 2 GiB of swap for the image build) is enough for tcpkv."
  type        = string
  default     = "t3.micro"
}

variable "ami_ssm_parameter" {
  description = "Public SSM parameter holding the AMI id. The bootstrap script expects Ubuntu (apt, docker.io); use the arm64 path with a Graviton instance type (e.g. t4g.micro)."
  type        = string
  default     = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
}

variable "ami_id" {
  description = "Explicit AMI id (an Ubuntu 22.04/24.04 image); overrides ami_ssm_parameter when set."
  type        = string
  default     = null
}

variable "root_volume_size" {
  description = "Size of the encrypted gp3 root volume in GiB (OS + Docker images + the append-only log)."
  type        = number
  default     = 16

  validation {
    condition     = var.root_volume_size >= 8
    error_message = "root_volume_size must be at least 8 GiB."
  }
}

variable "subnet_id" {
  description = "Public subnet to launch in. null = a default subnet of the region's default VPC."
  type        = string
  default     = null
}

variable "create_eip" {
  description = "Give the instance an Elastic IP, so its address (and the client command) survives stop/start. Without it the instance uses its auto-assigned public IP, which changes on stop/start; the server re-reads it from IMDSv2 at every boot."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
