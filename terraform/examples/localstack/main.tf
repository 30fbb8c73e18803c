# The storage half of the AWS deployment on LocalStack: the same bucket module (encryption,
# public access block, versioning, lifecycle rules, TLS-only bucket policy) and the same
# least-privilege broker policy on a role, plus the `strato serve` configuration that uses
# them. Run it with tflocal (pip install terraform-local), which points the AWS provider at
# LocalStack: see README.md here. LocalStack's community edition does not enforce IAM or
# bucket policies, so a broker with the test credentials works; on AWS the same policy is all
# a broker gets.

provider "aws" {
  region = "us-east-1"
}

module "bucket" {
  source = "../../modules/strato-bucket"

  bucket_name   = var.bucket_name
  object_prefix = var.name
  # The same layout as on AWS, where the etcd members upload snapshots next to the log.
  etcd_snapshot_prefix = "${var.name}-etcd-snapshots"
  # A scratch bucket: `terraform destroy` may empty it.
  force_destroy = true
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "broker" {
  name               = "${var.name}-strato-broker"
  description        = "Strato brokers of ${var.name} (the policy a broker gets on AWS)"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy" "broker_bucket" {
  name   = "bucket-prefix"
  role   = aws_iam_role.broker.id
  policy = module.bucket.broker_policy_json
}

locals {
  metadata_url = "etcd://${join(",", var.etcd_endpoints)}/strato/${var.name}"
}
