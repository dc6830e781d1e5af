terraform {
  # startswith(), strcontains() and the variable validations in variables.tf need a recent Terraform.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Pinned to one major version: a new major (7.x) must be an explicit, reviewed upgrade.
      version = "~> 6.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge({ Project = "tcpkv", ManagedBy = "terraform" }, var.tags)
  }
}
