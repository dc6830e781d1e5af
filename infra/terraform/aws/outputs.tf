output "instance_id" {
  description = "EC2 instance id."
  value       = aws_instance.this.id
}

output "security_group_id" {
  description = "Security group guarding the instance."
  value       = aws_security_group.this.id
}

output "public_ip" {
  description = "Public IPv4 address of the server (the Elastic IP when create_eip = true)."
  value       = local.public_ip
}

output "public_dns" {
  description = "Public DNS name of the server."
  value       = local.public_dns
}

output "server_address" {
  description = "host:port of the TLS port to give a client (TCPKV_SERVER or --server)."
  value       = "${local.public_dns}:${local.tcpkv_tls_port}"
}

output "client_tls_dir" {
  description = "Directory with the client's certificate and key and the CA certificate (TCPKV_CLIENT_TLS_DIR)."
  value       = abspath("${path.module}/tls")
}

output "shutdown_token" {
  description = "The END token (read it with: terraform output -raw shutdown_token)."
  value       = var.shutdown_token
  sensitive   = true
}

output "client_command" {
  description = "Run the seed scenario from your machine with the client image (paste from the repository root; needs Docker). Its END stops the server, which Docker restarts."
  value       = "TCPKV_SERVER=${local.public_dns}:${local.tcpkv_tls_port} TCPKV_CLIENT_TLS_DIR=${abspath("${path.module}/tls")} TCPKV_CLIENT_USER=\"$(id -u):$(id -g)\" TCPKV_SHUTDOWN_TOKEN=\"$(terraform -chdir=infra/terraform/aws output -raw shutdown_token)\" docker compose -f infra/remote/client.compose.yml run --rm client scenario"
}

output "client_command_node" {
  description = "The same with Node.js instead of Docker (paste from the repository root after npm ci && npm run build)."
  value       = "node dist/services/client/cli.js --server ${local.public_dns}:${local.tcpkv_tls_port} --tls --ca-file ${abspath("${path.module}/tls")}/ca.crt --cert-file ${abspath("${path.module}/tls")}/client.crt --key-file ${abspath("${path.module}/tls")}/client.key --token \"$(terraform -chdir=infra/terraform/aws output -raw shutdown_token)\" scenario"
}

output "health_command" {
  description = "Ask the server for a HEAD over TLS, every 20 s for at most 10 minutes; when it runs out, read the bootstrap log on the instance (ssh_command, then: sudo tail -n 50 /var/log/tcpkv-bootstrap.log)."
  value       = "for i in $(seq 30); do TCPKV_SERVER=${local.public_dns}:${local.tcpkv_tls_port} TCPKV_CLIENT_TLS_DIR=${abspath("${path.module}/tls")} TCPKV_CLIENT_USER=\"$(id -u):$(id -g)\" docker compose -f infra/remote/client.compose.yml run --rm client head && break; sleep 20; done"
}

output "ssh_command" {
  description = "SSH into the instance (only with key_name and ssh_cidrs set)."
  value       = var.key_name == null ? null : "ssh -i ~/.ssh/${var.key_name}.pem ubuntu@${local.public_dns}"
}
