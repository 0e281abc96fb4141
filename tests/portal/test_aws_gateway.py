"""The AWS gateway: every call through its clients — direct, paginated, waited on, or a streamed body — raises only
Porte's error kinds, so no caller handles botocore's."""

from __future__ import annotations

import pytest

from portal import aws
from tests.fixtures.domain import NO_AWS

pytestmark = pytest.mark.aws


def test_a_missing_thing_is_aws_not_found_and_an_existing_one_already_exists(local_aws):
    iam = aws.management().iam
    with pytest.raises(aws.AwsNotFound) as missing:
        iam.get_role(RoleName="porte-nobody")
    assert missing.value.code == "NoSuchEntity"
    iam.create_role(
        RoleName="porte-someone", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}'
    )
    with pytest.raises(aws.AwsAlreadyExists):
        iam.create_role(
            RoleName="porte-someone", AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}'
        )


def test_pages_are_translated_when_they_are_read(local_aws):
    pages = aws.management().s3.get_paginator("list_objects_v2").paginate(Bucket="no-such-bucket")
    with pytest.raises(aws.AwsNotFound) as missing:
        list(pages)
    assert missing.value.code == "NoSuchBucket"


def test_a_streamed_body_is_translated_and_reads_whole(local_aws):
    s3 = aws.management().s3
    s3.create_bucket(Bucket="gateway-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="gateway-test", Key="k", Body=b"x" * 100_000)
    body = s3.get_object(Bucket="gateway-test", Key="k")["Body"]
    assert b"".join(body.iter_chunks(4096)) == b"x" * 100_000


def test_an_unreachable_aws_is_aws_unavailable(settings):
    settings.AWS_ENDPOINT_URL = NO_AWS
    aws.reset_caches()
    try:
        with pytest.raises(aws.AwsUnavailable):
            aws.management().sts.get_caller_identity()
        with pytest.raises(aws.AwsUnavailable):
            list(aws.management().s3.get_paginator("list_objects_v2").paginate(Bucket="any"))
    finally:
        aws.reset_caches()
