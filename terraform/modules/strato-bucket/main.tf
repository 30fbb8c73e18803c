# The S3 bucket of a Strato cluster and the IAM policies of its users: brokers may use the
# object prefix and nothing else, etcd members may only add snapshots under theirs.
# modules/strato and examples/localstack both use this module, so the bucket settings and the
# policies are the same on AWS and on LocalStack.

locals {
  objects_arn = "${aws_s3_bucket.this.arn}/${var.object_prefix}/*"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logs would log every broker PUT and GET (hundreds per second), costing more than the log itself; use CloudTrail S3 data events if an audit trail is required.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; brokers learn about objects from the metadata store.
  #checkov:skip=CKV_AWS_144:Cross-region replication would double storage and PUT costs; durability comes from S3's in-region redundancy. Add replication if a region-loss recovery point is required.
  bucket        = var.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

# ACLs off: only IAM and the bucket policy decide access.
resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One KMS data key per bucket for a while instead of one KMS call per object.
    bucket_key_enabled = var.kms_key_arn != null
  }
}

# Strato writes every object under a new key and never overwrites one, so versions only come
# from deletes (garbage collection, retention); see var.versioning_enabled.
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = var.versioning_enabled ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }
  }

  rule {
    id     = "expire-deleted-objects"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }

    expiration {
      expired_object_delete_marker = true
    }
  }

  dynamic "rule" {
    for_each = var.etcd_snapshot_prefix == null ? [] : [var.etcd_snapshot_prefix]

    content {
      id     = "expire-etcd-snapshots"
      status = "Enabled"

      filter {
        prefix = "${rule.value}/"
      }

      expiration {
        days = var.etcd_snapshot_retention_days
      }
    }
  }

  # Lifecycle rules on noncurrent versions need the versioning status set first.
  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this.arn,
      "${aws_s3_bucket.this.arn}/*",
    ]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  # S3 rejects a bucket policy while the public access block is being changed.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# With a customer-managed key, whoever reads or writes objects needs it too (multipart uploads
# need Decrypt as well as GenerateDataKey).
data "aws_iam_policy_document" "kms" {
  count = var.kms_key_arn == null ? 0 : 1

  statement {
    sid       = "BucketKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# What a broker needs: read, write and delete segment objects under the prefix (multipart
# uploads included: create/upload/complete are s3:PutObject), list keys under the prefix for
# garbage collection, and clean up its own failed multipart uploads.
data "aws_iam_policy_document" "broker" {
  source_policy_documents = data.aws_iam_policy_document.kms[*].json

  statement {
    sid = "SegmentObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.objects_arn]
  }

  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.object_prefix}/*"]
    }
  }
}

# What an etcd member needs to upload snapshots: write under the snapshot prefix, nothing else
# (no read, no delete, no list: the lifecycle rule expires old snapshots).
data "aws_iam_policy_document" "etcd_snapshots" {
  count = var.etcd_snapshot_prefix == null ? 0 : 1

  source_policy_documents = data.aws_iam_policy_document.kms[*].json

  statement {
    sid       = "WriteSnapshots"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.this.arn}/${var.etcd_snapshot_prefix}/*"]
  }
}
