#!/bin/sh
# LocalStack init hook (runs inside the LocalStack container once S3 is ready): creates the
# bucket the brokers of docker-compose.yml write to. Creating an existing bucket in us-east-1
# succeeds, so a re-run is harmless.
set -eu
awslocal s3api create-bucket --bucket "${STRATO_BUCKET:-strato}" >/dev/null
echo "created bucket ${STRATO_BUCKET:-strato}"
