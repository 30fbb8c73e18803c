# Three etcd members with stable identities: member i lives in the zone of subnet i, keeps the
# private IP of network interface i and the data of volume i. Instances can be replaced (new
# AMI, new settings) one at a time without losing either; see docs/DEPLOY.md, "etcd".

resource "aws_network_interface" "etcd" {
  count = 3

  subnet_id       = var.subnet_ids[count.index]
  security_groups = [aws_security_group.etcd.id]
  description     = "Strato ${var.name} ${local.etcd_members[count.index]}: stable member address"
  tags            = merge(local.tags, { Name = "${var.name}-strato-${local.etcd_members[count.index]}" })
}

# Backed up by the hourly `etcdctl snapshot save` to S3 (user data), a consistent copy, which an
# EBS snapshot of a running member is not.
resource "aws_ebs_volume" "etcd" {
  count = 3

  availability_zone = data.aws_subnet.selected[count.index].availability_zone
  size              = var.etcd_volume_size_gib
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = merge(local.tags, { Name = "${var.name}-strato-${local.etcd_members[count.index]}-data" })
}

resource "aws_instance" "etcd" {
  count = 3

  ami                  = local.ami_id
  instance_type        = var.etcd_instance_type
  iam_instance_profile = aws_iam_instance_profile.instance["etcd"].name
  ebs_optimized        = true
  monitoring           = true

  primary_network_interface {
    network_interface_id = aws_network_interface.etcd[count.index].id
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 16
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  user_data = templatefile("${path.module}/templates/etcd-user-data.sh.tftpl", {
    cluster              = var.name
    member               = local.etcd_members[count.index]
    member_ip            = local.etcd_ips[count.index]
    initial_cluster      = join(",", [for i, ip in local.etcd_ips : "${local.etcd_members[i]}=http://${ip}:2380"])
    volume_id            = aws_ebs_volume.etcd[count.index].id
    image                = var.etcd_image
    quota_backend_bytes  = var.etcd_quota_backend_bytes
    compaction_retention = var.etcd_auto_compaction_retention
    region               = local.region
    log_group            = aws_cloudwatch_log_group.this.name
    snapshot_url         = "s3://${module.bucket.bucket_name}/${local.etcd_snapshot_prefix}/${local.etcd_members[count.index]}"
  })

  tags = merge(local.tags, { Name = "${var.name}-strato-${local.etcd_members[count.index]}", "strato:role" = "etcd" })

  lifecycle {
    # A new AMI or changed user data must not replace or restart all three members in one
    # apply (the cluster would lose its quorum). Roll them one at a time instead:
    #   terraform apply -replace='module.strato.aws_instance.etcd[0]'   (then [1], then [2])
    ignore_changes = [ami, user_data]
  }
}

resource "aws_volume_attachment" "etcd" {
  count = 3

  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.etcd[count.index].id
  instance_id = aws_instance.etcd[count.index].id
  # Detaching a mounted volume from a running member would corrupt it; stop the instance first.
  stop_instance_before_detaching = true
}
