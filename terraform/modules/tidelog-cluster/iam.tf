# The broker role may do exactly what a broker does on its bucket prefix:
# list it, read, write and delete objects, and run multipart uploads. It
# may also read the release tarball when that comes from S3, and use the
# KMS key when the bucket is SSE-KMS. Nothing else.

locals {
  release_s3_parts  = var.tidelog_release_s3_uri == null ? [] : split("/", trimprefix(var.tidelog_release_s3_uri, "s3://"))
  release_s3_bucket = try(local.release_s3_parts[0], null)
  release_s3_key    = try(join("/", slice(local.release_s3_parts, 1, length(local.release_s3_parts))), null)

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Action    = "sts:AssumeRole"
      Principal = { Service = "ec2.amazonaws.com" }
    }]
  })

  # Plain jsonencode (not aws_iam_policy_document) so the exact policy is
  # known at plan time and the tests can check it.
  broker_policy_statements = concat(
    [
      {
        Sid       = "ListOwnPrefix"
        Effect    = "Allow"
        Action    = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
        Resource  = [local.bucket_arn]
        Condition = { StringLike = { "s3:prefix" = [var.object_prefix, "${var.object_prefix}/*"] } }
      },
      {
        Sid    = "ObjectsUnderOwnPrefix"
        Effect = "Allow"
        Action = [
          "s3:GetObject",
          "s3:PutObject",
          "s3:DeleteObject",
          "s3:AbortMultipartUpload",
          "s3:ListMultipartUploadParts",
        ]
        Resource = ["${local.bucket_arn}/${var.object_prefix}/*"]
      },
    ],
    var.tidelog_release_s3_uri == null ? [] : [{
      Sid      = "ReadReleaseTarball"
      Effect   = "Allow"
      Action   = ["s3:GetObject"]
      Resource = ["arn:${data.aws_partition.current.partition}:s3:::${local.release_s3_bucket}/${local.release_s3_key}"]
    }],
    var.kms_key_arn == null ? [] : [{
      Sid      = "UseBucketKey"
      Effect   = "Allow"
      Action   = ["kms:Decrypt", "kms:GenerateDataKey"]
      Resource = [var.kms_key_arn]
    }],
  )

  broker_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.broker_policy_statements
  })
}

resource "aws_iam_role" "broker" {
  name_prefix        = "${var.name}-broker-"
  description        = "Tidelog brokers of cluster ${var.name}"
  assume_role_policy = local.assume_role_policy
  tags               = local.tags
}

resource "aws_iam_role_policy" "broker" {
  name   = "tidelog-bucket"
  role   = aws_iam_role.broker.id
  policy = local.broker_policy
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
