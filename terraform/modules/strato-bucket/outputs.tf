output "bucket_name" {
  description = "Name of the bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "object_store_url" {
  description = "The --object-store value of the brokers: s3://<bucket>/<prefix>."
  value       = "s3://${aws_s3_bucket.this.id}/${var.object_prefix}"
}

output "broker_policy_json" {
  description = "IAM policy (JSON) with exactly what a broker needs on this bucket: objects under the prefix, listing of the prefix, multipart clean-up (and the KMS key when one is set)."
  value       = data.aws_iam_policy_document.broker.json
}

output "etcd_snapshot_policy_json" {
  description = "IAM policy (JSON) that lets etcd members upload snapshots under etcd_snapshot_prefix and do nothing else; null without a snapshot prefix."
  value       = one(data.aws_iam_policy_document.etcd_snapshots[*].json)
}
