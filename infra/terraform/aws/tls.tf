# TLS for the server and a client certificate for home, from a private CA made here with Terraform's
# tls provider. Where the private keys live:
#   - all three (the CA's, the server's, the client's) are in the Terraform STATE, in clear text.
#     Whoever can read the state can impersonate the server or a client: keep the state private
#     (a remote backend with encryption and access control, never in git; .gitignore keeps the local
#     terraform.tfstate out);
#   - the server's key is also in the instance's user data (readable by IAM principals with
#     ec2:DescribeInstanceAttribute, as the token is) and, on the instance, in /etc/tcpkv/tls
#     (readable by root and the container's uid 1000 only);
#   - the client's key and certificate and the CA certificate are written to tls/ next to this file
#     (files 0600, directory 0700) for the client compose file; the CA's key is written nowhere.
# To issue a new client certificate: terraform apply -replace=tls_locally_signed_cert.client

resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem       = tls_private_key.ca.private_key_pem
  is_ca_certificate     = true
  validity_period_hours = 24 * 365 * 10
  allowed_uses          = ["cert_signing", "crl_signing"]

  subject {
    common_name = "${var.name} private CA"
  }
}

resource "tls_private_key" "server" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "server" {
  private_key_pem = tls_private_key.server.private_key_pem
  # The names a client connects with: the Elastic IP and its DNS name (known before the instance;
  # without an Elastic IP the address is only known afterwards, so connect with a name given in
  # tls_server_names and TCPKV_CLIENT_SERVERNAME).
  ip_addresses = var.create_eip ? [aws_eip.this[0].public_ip] : []
  dns_names    = concat(var.create_eip ? [aws_eip.this[0].public_dns] : [], var.tls_server_names)

  subject {
    common_name = var.name
  }
}

resource "tls_locally_signed_cert" "server" {
  cert_request_pem      = tls_cert_request.server.cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = var.tls_validity_hours
  allowed_uses          = ["digital_signature", "server_auth"]
}

resource "tls_private_key" "client" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "client" {
  private_key_pem = tls_private_key.client.private_key_pem

  subject {
    common_name = var.tls_client_name
  }
}

resource "tls_locally_signed_cert" "client" {
  cert_request_pem      = tls_cert_request.client.cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = var.tls_validity_hours
  allowed_uses          = ["digital_signature", "client_auth"]
}

# The client's files, for infra/remote/client.compose.yml (TCPKV_CLIENT_TLS_DIR).
resource "local_sensitive_file" "client_key" {
  filename             = "${path.module}/tls/client.key"
  content              = tls_private_key.client.private_key_pem
  file_permission      = "0600"
  directory_permission = "0700"
}

resource "local_sensitive_file" "client_cert" {
  filename             = "${path.module}/tls/client.crt"
  content              = tls_locally_signed_cert.client.cert_pem
  file_permission      = "0600"
  directory_permission = "0700"
}

resource "local_sensitive_file" "ca_cert" {
  filename             = "${path.module}/tls/ca.crt"
  content              = tls_self_signed_cert.ca.cert_pem
  file_permission      = "0600"
  directory_permission = "0700"
}
