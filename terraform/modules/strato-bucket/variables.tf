variable "bucket_name" {
  description = "Name of the S3 bucket that holds the Strato log (globally unique)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 characters of lowercase letters, digits, '.' and '-', starting and ending with a letter or digit."
  }
}

variable "object_prefix" {
  description = "Key prefix of the cluster's objects: brokers run with --object-store s3://<bucket>/<object_prefix> and may touch only keys under <object_prefix>/."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.object_prefix))
    error_message = "object_prefix must be non-empty, without leading or trailing '/', made of letters, digits, '_', '.', '-' and '/'."
  }
}

variable "versioning_enabled" {
  description = "Keep deleted and overwritten objects as noncurrent versions for noncurrent_version_expiration_days (a recovery window against a mistaken delete, at the cost of storing what garbage collection deletes that much longer). Strato never overwrites an object, so versioning only ever keeps deleted ones."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days a noncurrent (deleted) object version is kept before S3 removes it. Only matters with versioning_enabled."
  type        = number
  default     = 1

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && var.noncurrent_version_expiration_days <= 365 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number from 1 to 365."
  }
}

variable "abort_incomplete_multipart_upload_days" {
  description = "Days after which S3 aborts a multipart upload that was never completed (a broker that died mid-upload leaves its parts behind, and they are billed as storage until aborted)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_upload_days >= 1 && var.abort_incomplete_multipart_upload_days <= 30 && floor(var.abort_incomplete_multipart_upload_days) == var.abort_incomplete_multipart_upload_days
    error_message = "abort_incomplete_multipart_upload_days must be a whole number from 1 to 30."
  }
}

variable "etcd_snapshot_prefix" {
  description = "Key prefix for etcd snapshots (written by the etcd members, never by brokers); null when this bucket holds none. Must not be under object_prefix."
  type        = string
  default     = null

  validation {
    condition     = var.etcd_snapshot_prefix == null || can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.etcd_snapshot_prefix))
    error_message = "etcd_snapshot_prefix must be null or non-empty, without leading or trailing '/', made of letters, digits, '_', '.', '-' and '/'."
  }
}

variable "etcd_snapshot_retention_days" {
  description = "Days an etcd snapshot is kept before S3 deletes it."
  type        = number
  default     = 7

  validation {
    condition     = var.etcd_snapshot_retention_days >= 1 && floor(var.etcd_snapshot_retention_days) == var.etcd_snapshot_retention_days
    error_message = "etcd_snapshot_retention_days must be a whole number of at least 1."
  }
}

variable "kms_key_arn" {
  description = "ARN of a customer-managed KMS key for SSE-KMS (with S3 Bucket Keys, so KMS is called rarely); null for SSE-S3 (AES-256 with S3-managed keys, no KMS cost)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or the ARN of a KMS key (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket even when it still holds objects (the whole log). Leave false outside experiments."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}
