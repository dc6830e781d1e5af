terraform {
  # startswith(), strcontains() and the variable validations in variables.tf need a recent Terraform.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned to one major version: a new major (7.x) must be an explicit, reviewed upgrade.
      version = "~> 6.0"
    }
    # The private CA and the server's and client's certificates (tls.tf).
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
    # The client's certificate and key, written to tls/ for the client compose file.
    local = {
      source  = "hashicorp/local"
      version = "~> 2.5"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "tcpkv", ManagedBy = "terraform" }, var.tags)
  }
}
