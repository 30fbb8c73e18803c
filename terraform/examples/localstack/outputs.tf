output "object_store_url" {
  description = "The broker's --object-store."
  value       = module.bucket.object_store_url
}

output "broker_policy_json" {
  description = "The least-privilege policy attached to the broker role (identical on AWS)."
  value       = module.bucket.broker_policy_json
}

output "strato_toml" {
  description = "A strato.toml for `strato serve --config strato.toml` against this bucket: terraform output -raw strato_toml > strato.toml"
  value       = <<-EOT
    # Written by terraform/examples/localstack. Credentials come from the environment:
    # AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    object-store = "${module.bucket.object_store_url}"
    s3-endpoint = "${var.localstack_endpoint}"
    metadata = "${local.metadata_url}"
  EOT
}

output "serve_command" {
  description = "The same configuration as one command line."
  value       = "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 strato serve --object-store ${module.bucket.object_store_url} --s3-endpoint ${var.localstack_endpoint} --metadata ${local.metadata_url}"
}
