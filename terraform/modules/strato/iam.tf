# Instance roles. A broker may use its bucket prefix (modules/strato-bucket's policy), write its
# logs, pull the broker image when it is in ECR, read the secrets of its TLS files and first
# user (those only), and (optionally) talk to SSM. An etcd member may write snapshots under its
# own prefix and its logs. Neither can read what the other writes.

locals {
  instance_roles = {
    broker = "Strato ${var.name} brokers"
    etcd   = "Strato ${var.name} etcd members"
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  for_each = local.instance_roles

  name_prefix        = "${var.name}-strato-${each.key}-"
  description        = each.value
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

resource "aws_iam_instance_profile" "instance" {
  for_each = local.instance_roles

  name_prefix = "${var.name}-strato-${each.key}-"
  role        = aws_iam_role.instance[each.key].name
  tags        = local.tags
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_role_policy" "logs" {
  for_each = local.instance_roles

  name   = "logs"
  role   = aws_iam_role.instance[each.key].id
  policy = data.aws_iam_policy_document.logs.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  for_each = { for k, v in local.instance_roles : k => v if var.enable_ssm_session_manager }

  role       = aws_iam_role.instance[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# ---- brokers -------------------------------------------------------------------------------------

resource "aws_iam_role_policy" "broker_bucket" {
  name   = "bucket-prefix"
  role   = aws_iam_role.instance["broker"].id
  policy = module.bucket.broker_policy_json
}

data "aws_iam_policy_document" "broker_ecr" {
  count = local.ecr_repository == null ? 0 : 1

  statement {
    sid       = "PullBrokerImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [local.ecr_repository]
  }

  # GetAuthorizationToken is not tied to a repository: IAM only accepts "*" for it.
  statement {
    sid       = "RegistryLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "broker_ecr" {
  count = local.ecr_repository == null ? 0 : 1

  name   = "ecr-pull"
  role   = aws_iam_role.instance["broker"].id
  policy = data.aws_iam_policy_document.broker_ecr[0].json
}

# The secrets of var.tls and var.admin_user (security.tf), each by its exact ARN, and their KMS
# key through these two services only. Nothing else in Secrets Manager or Parameter Store.
locals {
  secret_arns = {
    for service in ["secretsmanager", "ssm"] : service => distinct([for s in values(local.secrets) : s.arn if s.service == service])
  }
}

data "aws_iam_policy_document" "broker_secrets" {
  count = length(local.secrets) == 0 ? 0 : 1

  dynamic "statement" {
    for_each = length(local.secret_arns.secretsmanager) == 0 ? [] : [local.secret_arns.secretsmanager]

    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_arns.ssm) == 0 ? [] : [local.secret_arns.ssm]

    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameter"]
      resources = statement.value
    }
  }

  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == null ? [] : [var.secrets_kms_key_arn]

    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values = flatten([
          for region in local.secret_regions : [
            "secretsmanager.${region}.${data.aws_partition.current.dns_suffix}",
            "ssm.${region}.${data.aws_partition.current.dns_suffix}",
          ]
        ])
      }
    }
  }
}

resource "aws_iam_role_policy" "broker_secrets" {
  count = length(local.secrets) == 0 ? 0 : 1

  name   = "secrets"
  role   = aws_iam_role.instance["broker"].id
  policy = data.aws_iam_policy_document.broker_secrets[0].json
}

# Elasticity (brokers.tf): a broker completes the termination lifecycle action of its own group
# once it drained, and publishes its produce rate for the scaling policy. PutMetricData has
# no resource to scope it to; the condition limits it to the Strato namespace.
data "aws_iam_policy_document" "broker_scaling" {
  statement {
    sid       = "CompleteDrain"
    actions   = ["autoscaling:CompleteLifecycleAction"]
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.broker_group_name}"]
  }

  statement {
    sid       = "PublishProduceRate"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [local.metric_namespace]
    }
  }
}

resource "aws_iam_role_policy" "broker_scaling" {
  name   = "scaling"
  role   = aws_iam_role.instance["broker"].id
  policy = data.aws_iam_policy_document.broker_scaling.json
}

# ---- etcd ----------------------------------------------------------------------------------------

resource "aws_iam_role_policy" "etcd_snapshots" {
  name   = "snapshots"
  role   = aws_iam_role.instance["etcd"].id
  policy = module.bucket.etcd_snapshot_policy_json
}
