# The broker role may do exactly what a broker does on its bucket prefix:
# list it, read, write and delete objects, and run multipart uploads. It
# may also read the release tarball when that comes from S3, and use the
# KMS key when the bucket is SSE-KMS. Nothing else.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

locals {
  release_s3_bucket = var.tidelog_release_s3_uri == null ? null : split("/", trimprefix(var.tidelog_release_s3_uri, "s3://"))[0]
  release_s3_key    = var.tidelog_release_s3_uri == null ? null : join("/", slice(split("/", trimprefix(var.tidelog_release_s3_uri, "s3://")), 1, length(split("/", trimprefix(var.tidelog_release_s3_uri, "s3://")))))
}

data "aws_iam_policy_document" "broker" {
  statement {
    sid       = "ListOwnPrefix"
    actions   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [var.object_prefix, "${var.object_prefix}/*"]
    }
  }

  statement {
    sid = "ObjectsUnderOwnPrefix"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arn}/${var.object_prefix}/*"]
  }

  dynamic "statement" {
    for_each = var.tidelog_release_s3_uri == null ? [] : [1]
    content {
      sid       = "ReadReleaseTarball"
      actions   = ["s3:GetObject"]
      resources = ["arn:${data.aws_partition.current.partition}:s3:::${local.release_s3_bucket}/${local.release_s3_key}"]
    }
  }

  dynamic "statement" {
    for_each = var.kms_key_arn == null ? [] : [1]
    content {
      sid       = "UseBucketKey"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role" "broker" {
  name_prefix        = "${var.name}-broker-"
  description        = "Tidelog brokers of cluster ${var.name}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "broker" {
  name   = "tidelog-bucket"
  role   = aws_iam_role.broker.id
  policy = data.aws_iam_policy_document.broker.json
}

resource "aws_iam_role_policy_attachment" "additional" {
  for_each = toset(var.additional_iam_policy_arns)

  role       = aws_iam_role.broker.name
  policy_arn = each.value
}

resource "aws_iam_instance_profile" "broker" {
  name_prefix = "${var.name}-broker-"
  role        = aws_iam_role.broker.name
  tags        = local.tags
}
