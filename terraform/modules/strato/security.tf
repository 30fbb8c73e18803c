# Kafka security: the brokers' listeners, the host they advertise, the `strato serve` security
# flags, and the secrets a broker reads at boot. Terraform only handles references to the
# secrets (ARNs and parameter names): their values never enter the plan or the state. The
# user data (templates/broker-user-data.sh.tftpl) fetches them; iam.tf lets the broker role
# read exactly these. docs/DEPLOY.md, "Securing a cluster".

locals {
  tls_enabled  = contains(["SSL", "SASL_SSL"], var.listener_security_protocol)
  sasl_enabled = contains(["SASL_PLAINTEXT", "SASL_SSL"], var.listener_security_protocol)

  # A TLS client checks the broker's name against its certificate, and brokers come and go with
  # the Auto Scaling group: the EC2 private DNS name ip-<a>-<b>-<c>-<d>.<domain>, which always
  # resolves in the VPC, lets one wildcard certificate cover them all.
  advertised_host    = coalesce(var.advertised_host, local.tls_enabled ? "private_dns" : "private_ip")
  private_dns_domain = local.region == "us-east-1" ? "ec2.internal" : "${local.region}.compute.internal"
  # The same as a shell expression, expanded by the user data at boot.
  advertised_host_expression = local.advertised_host == "private_dns" ? "$private_dns" : "$private_ip"

  # The Kafka listeners by key. Port 9092 keeps the key "kafka" it had when there was one
  # listener, so that its target group and rules stay in place when a second one is added.
  kafka_listeners = merge(
    {
      (var.listener_port == 9092 ? "kafka" : "kafka-${var.listener_port}") = {
        port     = var.listener_port
        protocol = var.listener_security_protocol
      }
    },
    var.plaintext_listener_port == null ? {} : {
      (var.plaintext_listener_port == 9092 ? "kafka" : "kafka-${var.plaintext_listener_port}") = {
        port     = var.plaintext_listener_port
        protocol = "PLAINTEXT"
      }
    },
  )
  # One PLAINTEXT listener keeps the flags it always had (--listen, --advertised-address), so
  # that the default user data does not change; otherwise --listeners and --advertised-listeners.
  single_plaintext_listener = var.listener_security_protocol == "PLAINTEXT" && var.plaintext_listener_port == null
  listeners                 = join(",", [for l in values(local.kafka_listeners) : "${l.protocol}://0.0.0.0:${l.port}"])
  advertised_listeners      = join(",", [for l in values(local.kafka_listeners) : "${l.protocol}://${local.advertised_host_expression}:${l.port}"])

  bootstrap_host = var.bootstrap_dns == null ? aws_lb.this.dns_name : trimsuffix(var.bootstrap_dns.name, ".")

  sasl_mechanisms = var.sasl_mechanisms != null ? var.sasl_mechanisms : (
    var.listener_security_protocol == "SASL_PLAINTEXT" ? ["SCRAM-SHA-256", "SCRAM-SHA-512"] : ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]
  )
  super_users = distinct(concat(var.super_users, var.admin_user == null ? [] : ["User:${var.admin_user.name}"]))

  # Where the broker container finds the TLS files (the same path on the host, mounted read-only).
  tls_dir = "/etc/strato/tls"

  # The secrets by purpose. A reference is a Secrets Manager secret ARN, an SSM parameter ARN,
  # or an SSM parameter name (/path/name) in the cluster's account and region.
  secret_refs = merge(
    var.tls == null ? {} : {
      certificate_chain = var.tls.certificate_chain_secret
      private_key       = var.tls.private_key_secret
    },
    try(var.tls.client_ca_secret, null) == null ? {} : { client_ca = var.tls.client_ca_secret },
    var.admin_user == null ? {} : { admin_password = var.admin_user.password_secret },
  )
  secrets = {
    for purpose, ref in local.secret_refs : purpose => {
      service = startswith(ref, "arn:") ? split(":", ref)[2] : "ssm"
      region  = startswith(ref, "arn:") ? split(":", ref)[3] : local.region
      id      = ref
      arn     = startswith(ref, "arn:") ? ref : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${ref}"
    }
  }
  secret_regions = distinct([for s in values(local.secrets) : s.region])

  # The files under tls_dir and the secret each comes from.
  tls_file_names = { certificate_chain = "chain.pem", private_key = "key.pem", client_ca = "client-ca.pem" }
  tls_files = [
    for purpose, file in local.tls_file_names : merge(local.secrets[purpose], { file = file })
    if contains(keys(local.secrets), purpose)
  ]
  admin_password = lookup(local.secrets, "admin_password", { service = "", region = "", id = "", arn = "" })

  # `strato serve` flags beyond the listeners; none with the defaults.
  security_flags = concat(
    local.tls_enabled ? [
      "--tls-cert ${local.tls_dir}/chain.pem",
      "--tls-key ${local.tls_dir}/key.pem",
    ] : [],
    contains(keys(local.secrets), "client_ca") ? ["--tls-client-ca ${local.tls_dir}/client-ca.pem"] : [],
    local.sasl_enabled ? ["--sasl-mechanisms ${join(",", local.sasl_mechanisms)}"] : [],
    var.authorizer_enabled ? ["--authorizer true"] : [],
    var.authorizer_enabled && length(local.super_users) > 0 ? ["--super-users '${join(";", local.super_users)}'"] : [],
  )
}
