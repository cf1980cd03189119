"""Smoke deploy of template.yaml into the local AWS emulator (moto server); see scripts/smoke-deploy.

Two commands, each run by the virtualenv that has its library:
  transform SOURCE TARGET            (.venv-checks: aws-sam-translator) SAM -> CloudFormation JSON
  deploy TRANSFORMED --endpoint URL  (.venv: boto3, as moto depends on it) create and check

`deploy` resolves the template's parameters (their defaults, or --parameter Key=Value), its
conditions and intrinsic functions itself, creates every resource of a type the emulator
supports with boto3 from its resolved properties, in dependency order, and prints the ones it
skips. It then reads the emulator back and checks that names and key properties agree with the
code (crates/reactor-monitor/src/config.rs `defaults`, crates/reactor-monitor/src/adapters/dynamodb.rs `attr`, crates/reactor-monitor/src/adapters/s3.rs KEY_PREFIX)
and that the skipped resources (function, event source mapping, role) name what was created.
Any property it does not know how to apply is a failure, not a silent omission.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Any, Callable

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
STACK_NAME = "reactor-monitor"
NO_VALUE = object()


# ---------------------------------------------------------------------------------------------
# transform (runs under .venv-checks)
# ---------------------------------------------------------------------------------------------
def transform(source: str, target: str) -> None:
    """The SAM transform as scripts/check-template runs it (local code paths -> placeholders)."""
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform as sam_transform
    from samtranslator.yaml_helper import yaml_parse

    with open(source, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    local_code = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}
    for name, resource in template.get("Resources", {}).items():
        key = local_code.get(resource.get("Type"))
        props = resource.get("Properties", {})
        if key and isinstance(props.get(key), str) and not props[key].startswith("s3://"):
            props[key] = f"s3://placeholder-artifacts/{name}.zip"
        if resource.get("Type") == "AWS::Serverless::Application" and isinstance(props.get("Location"), str):
            props["Location"] = f"https://placeholder-artifacts.s3.{REGION}.amazonaws.com/{name}.template"

    class NoManagedPolicyLookup:
        def load(self):
            raise RuntimeError("template names a managed policy: resolving it needs IAM (online)")

    pseudo = {"AWS::Region": REGION, "AWS::Partition": "aws", "AWS::AccountId": ACCOUNT_ID}
    try:
        output = sam_transform(template, pseudo, NoManagedPolicyLookup())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(cause.message)
        sys.exit(1)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=1)


# ---------------------------------------------------------------------------------------------
# intrinsic functions
# ---------------------------------------------------------------------------------------------
class Unresolvable(Exception):
    pass


class Template:
    def __init__(self, doc: dict, overrides: dict[str, str]):
        self.doc = doc
        self.resources: dict[str, dict] = doc.get("Resources", {})
        self.params: dict[str, str] = {}
        for name, spec in (doc.get("Parameters") or {}).items():
            if name in overrides:
                value = overrides.pop(name)
            elif "Default" in spec:
                value = spec["Default"]
            else:
                raise Unresolvable(f"parameter {name} has no default (pass --parameter {name}=...)")
            if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)  # CloudFormation gives every scalar parameter as a string
            allowed = spec.get("AllowedValues")
            if allowed and str(value) not in [str(a) for a in allowed]:
                raise Unresolvable(f"parameter {name}={value!r} is not one of {allowed}")
            pattern = spec.get("AllowedPattern")
            if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
                raise Unresolvable(f"parameter {name}={value!r} does not match {pattern}")
            self.params[name] = value
        if overrides:
            raise Unresolvable(f"unknown parameter(s): {', '.join(overrides)}")
        self.pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/smoke",
        }
        self.conditions: dict[str, bool] = {}
        for name in doc.get("Conditions") or {}:
            self.condition(name)
        # Logical id -> (Ref value, {attribute: value}) of what exists (or stands in for it).
        self.physical: dict[str, tuple[Any, dict[str, Any]]] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.resolve(self.doc["Conditions"][name]))
        return self.conditions[name]

    def active(self, logical_id: str) -> bool:
        cond = self.resources[logical_id].get("Condition")
        return cond is None or self.condition(cond)

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name][0]
        raise Unresolvable(f"Ref {name}: neither a parameter nor a resource created before it")

    def get_att(self, name: str, attribute: str) -> Any:
        if name not in self.physical:
            raise Unresolvable(f"GetAtt {name}.{attribute}: no such resource created before it")
        attrs = self.physical[name][1]
        if attribute in attrs:
            return attrs[attribute]
        if "*" in attrs:  # a skipped resource: any attribute is a placeholder
            return f"{attrs['*']}.{attribute}"
        raise Unresolvable(f"GetAtt {name}.{attribute}: unknown attribute (known: {', '.join(attrs)})")

    def sub(self, text: str, variables: dict) -> str:
        def one(m: re.Match) -> str:
            expr = m.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                value = variables[expr]
            elif "." in expr and not expr.startswith("AWS::"):
                value = self.get_att(*expr.split(".", 1))
            else:
                value = self.ref(expr)
            if not isinstance(value, (str, int, float)):
                raise Unresolvable(f"Fn::Sub ${{{expr}}} is not a scalar: {value!r}")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            out = [self.resolve(v) for v in node]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(name, self.resolve(attribute))
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                a, b = (self.resolve(v) for v in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in arg)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                sep, values = arg
                return sep.join(str(v) for v in self.resolve(values))
            if key == "Fn::Select":
                index, values = arg
                return self.resolve(values)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return self.resolve(text).split(sep)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} is not supported by smoke-deploy")
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def dependencies(self, logical_id: str) -> set[str]:
        found: set[str] = set()
        resource = self.resources[logical_id]

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for v in node:
                    walk(v)
            elif isinstance(node, dict):
                for k, v in node.items():
                    if k == "Ref" and isinstance(v, str):
                        found.add(v)
                    elif k == "Fn::GetAtt":
                        found.add(v[0] if isinstance(v, list) else v.split(".", 1)[0])
                    elif k == "Fn::Sub":
                        text = v if isinstance(v, str) else v[0]
                        for expr in re.findall(r"\$\{([^}!][^}]*)\}", text):
                            found.add(expr.split(".", 1)[0])
                        if not isinstance(v, str):
                            walk(v[1])
                    else:
                        walk(v)

        walk(resource.get("Properties"))
        depends = resource.get("DependsOn", [])
        found.update([depends] if isinstance(depends, str) else depends)
        return found & set(self.resources)

    def order(self) -> list[str]:
        done: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            if name in visiting:
                raise Unresolvable(f"circular dependency through {name}")
            visiting.add(name)
            for dep in sorted(self.dependencies(name)):
                visit(dep)
            visiting.discard(name)
            done.append(name)

        for name in self.resources:
            visit(name)
        return done


# ---------------------------------------------------------------------------------------------
# creating resources in the emulator
# ---------------------------------------------------------------------------------------------
class Props:
    """Resolved properties; every one must be taken, else the resource is not fully deployed."""

    def __init__(self, logical_id: str, props: dict):
        self.logical_id, self.props, self.taken = logical_id, props, set()

    def get(self, key: str, default: Any = None) -> Any:
        self.taken.add(key)
        return self.props.get(key, default)

    def require(self, key: str) -> Any:
        if key not in self.props:
            raise Unresolvable(f"{self.logical_id}: property {key} is required by smoke-deploy")
        return self.get(key)

    def left_over(self) -> list[str]:
        return sorted(set(self.props) - self.taken)


def arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{resource}"


class Deployer:
    def __init__(self, endpoint: str):
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="smoke-deploy", aws_secret_access_key="smoke-deploy", region_name=REGION
        )
        from botocore.config import Config

        config = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
        self.client = lambda service: session.client(service, endpoint_url=endpoint, config=config)
        self.kinesis = self.client("kinesis")
        self.dynamodb = self.client("dynamodb")
        self.sns = self.client("sns")
        self.sqs = self.client("sqs")
        self.s3 = self.client("s3")
        self.kms = self.client("kms")
        self.logs = self.client("logs")

    # Each returns (Ref value, {attribute: value}).
    def kinesis_stream(self, p: Props):
        name = p.require("Name")
        mode = (p.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        request: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
        if p.get("ShardCount") is not None:
            request["ShardCount"] = int(p.props["ShardCount"])
        self.kinesis.create_stream(**request)
        self.wait_stream(name)
        hours = p.get("RetentionPeriodHours")
        if hours is not None and int(hours) > 24:
            self.kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=int(hours))
        encryption = p.get("StreamEncryption")
        if encryption:
            self.kinesis.start_stream_encryption(
                StreamName=name, EncryptionType=encryption["EncryptionType"], KeyId=encryption["KeyId"]
            )
            self.wait_stream(name)
        for tag in p.get("Tags") or []:
            self.kinesis.add_tags_to_stream(StreamName=name, Tags={tag["Key"]: tag["Value"]})
        stream_arn = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
        return name, {"Arn": stream_arn}

    def wait_stream(self, name: str) -> None:
        for _ in range(100):
            summary = self.kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                return
            time.sleep(0.05)
        raise RuntimeError(f"stream {name} never became ACTIVE")

    def dynamodb_table(self, p: Props):
        name = p.require("TableName")
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": p.require("AttributeDefinitions"),
            "KeySchema": p.require("KeySchema"),
            "BillingMode": p.get("BillingMode", "PROVISIONED"),
        }
        for key in ("ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification"):
            if p.get(key) is not None:
                request[key] = p.props[key]
        sse = p.get("SSESpecification")
        if sse:
            request["SSESpecification"] = {"Enabled": sse.get("SSEEnabled", False)}
            for cfn, api in (("SSEType", "SSEType"), ("KMSMasterKeyId", "KMSMasterKeyId")):
                if cfn in sse:
                    request["SSESpecification"][api] = sse[cfn]
        if p.get("DeletionProtectionEnabled") is not None:
            request["DeletionProtectionEnabled"] = bool(p.props["DeletionProtectionEnabled"])
        if p.get("Tags"):
            request["Tags"] = p.props["Tags"]
        self.dynamodb.create_table(**request)
        self.dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
        pitr = p.get("PointInTimeRecoverySpecification")
        if pitr:
            self.dynamodb.update_continuous_backups(
                TableName=name,
                PointInTimeRecoverySpecification={
                    "PointInTimeRecoveryEnabled": bool(pitr.get("PointInTimeRecoveryEnabled"))
                },
            )
        ttl = p.get("TimeToLiveSpecification")
        if ttl:
            self.dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
            )
        table_arn = self.dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        return name, {"Arn": table_arn}

    def sns_topic(self, p: Props):
        name = p.require("TopicName")
        attributes = {}
        for key in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication"):
            if p.get(key) is not None:
                attributes[key] = str(p.props[key]).lower() if isinstance(p.props[key], bool) else str(p.props[key])
        topic_arn = self.sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return topic_arn, {"TopicArn": topic_arn, "TopicName": name}

    def sns_topic_policy(self, p: Props):
        policy = json.dumps(p.require("PolicyDocument"))
        for topic in p.require("Topics"):
            self.sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=policy)
        return "topic-policy", {}

    def sns_subscription(self, p: Props):
        sub_arn = self.sns.subscribe(
            TopicArn=p.require("TopicArn"), Protocol=p.require("Protocol"), Endpoint=p.require("Endpoint"),
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return sub_arn, {}

    def sqs_queue(self, p: Props):
        name = p.require("QueueName")
        attributes = {}
        for key in ("SqsManagedSseEnabled", "MessageRetentionPeriod", "VisibilityTimeout", "KmsMasterKeyId",
                    "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds", "FifoQueue"):
            if p.get(key) is not None:
                value = p.props[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": queue_arn, "QueueName": name, "QueueUrl": url}

    def sqs_queue_policy(self, p: Props):
        policy = json.dumps(p.require("PolicyDocument"))
        for url in p.require("Queues"):
            self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
        return "queue-policy", {}

    def s3_bucket(self, p: Props):
        name = p.require("BucketName")
        self.s3.create_bucket(Bucket=name)  # us-east-1: no LocationConstraint
        encryption = p.get("BucketEncryption")
        if encryption:
            rules = []
            for rule in encryption["ServerSideEncryptionConfiguration"]:
                rule = dict(rule)
                if "ServerSideEncryptionByDefault" in rule:  # CloudFormation's name of the API's key
                    rule["ApplyServerSideEncryptionByDefault"] = rule.pop("ServerSideEncryptionByDefault")
                rules.append(rule)
            self.s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        pab = p.get("PublicAccessBlockConfiguration")
        if pab:
            self.s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=pab)
        ownership = p.get("OwnershipControls")
        if ownership:
            self.s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=ownership)
        versioning = p.get("VersioningConfiguration")
        if versioning:
            self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
        lifecycle = p.get("LifecycleConfiguration")
        if lifecycle:
            rules = []
            for rule in lifecycle["Rules"]:
                rule = dict(rule)
                api = {"ID": rule.pop("Id", None), "Status": rule.pop("Status")}
                prefix = rule.pop("Prefix", None)
                api["Filter"] = rule.pop("Filter", None) or {"Prefix": prefix or ""}
                if "ExpirationInDays" in rule:
                    api["Expiration"] = {"Days": int(rule.pop("ExpirationInDays"))}
                if "NoncurrentVersionExpiration" in rule:
                    nve = rule.pop("NoncurrentVersionExpiration")
                    api["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(nve["NoncurrentDays"])}
                if "NoncurrentVersionExpirationInDays" in rule:
                    api["NoncurrentVersionExpiration"] = {
                        "NoncurrentDays": int(rule.pop("NoncurrentVersionExpirationInDays"))
                    }
                if "Transitions" in rule:
                    api["Transitions"] = [{"Days": int(tr["TransitionInDays"]), "StorageClass": tr["StorageClass"]}
                                          for tr in rule.pop("Transitions")]
                if "AbortIncompleteMultipartUpload" in rule:
                    abort = rule.pop("AbortIncompleteMultipartUpload")
                    api["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(abort["DaysAfterInitiation"])}
                if rule:
                    raise Unresolvable(f"{p.logical_id}: lifecycle rule keys not mapped: {', '.join(rule)}")
                rules.append({k: v for k, v in api.items() if v is not None})
            self.s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        if p.get("Tags"):
            self.s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": p.props["Tags"]})
        return name, {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}

    def s3_bucket_policy(self, p: Props):
        self.s3.put_bucket_policy(Bucket=p.require("Bucket"), Policy=json.dumps(p.require("PolicyDocument")))
        return "bucket-policy", {}

    def kms_key(self, p: Props):
        request: dict[str, Any] = {}
        if p.get("Description") is not None:
            request["Description"] = p.props["Description"]
        if p.get("KeyPolicy") is not None:
            request["Policy"] = json.dumps(p.props["KeyPolicy"])
        for key in ("KeyUsage", "KeySpec"):
            if p.get(key) is not None:
                request[key] = p.props[key]
        meta = self.kms.create_key(**request)["KeyMetadata"]
        if p.get("EnableKeyRotation"):
            self.kms.enable_key_rotation(KeyId=meta["KeyId"])
        return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def kms_alias(self, p: Props):
        name = p.require("AliasName")
        self.kms.create_alias(AliasName=name, TargetKeyId=p.require("TargetKeyId"))
        return name, {}

    def log_group(self, p: Props):
        name = p.require("LogGroupName")
        self.logs.create_log_group(logGroupName=name)
        if p.get("RetentionInDays") is not None:
            self.logs.put_retention_policy(logGroupName=name, retentionInDays=int(p.props["RetentionInDays"]))
        return name, {"Arn": arn("logs", f"log-group:{name}:*")}


HANDLERS: dict[str, Callable[[Deployer, Props], tuple]] = {
    "AWS::Kinesis::Stream": Deployer.kinesis_stream,
    "AWS::DynamoDB::Table": Deployer.dynamodb_table,
    "AWS::SNS::Topic": Deployer.sns_topic,
    "AWS::SNS::TopicPolicy": Deployer.sns_topic_policy,
    "AWS::SNS::Subscription": Deployer.sns_subscription,
    "AWS::SQS::Queue": Deployer.sqs_queue,
    "AWS::SQS::QueuePolicy": Deployer.sqs_queue_policy,
    "AWS::S3::Bucket": Deployer.s3_bucket,
    "AWS::S3::BucketPolicy": Deployer.s3_bucket_policy,
    "AWS::KMS::Key": Deployer.kms_key,
    "AWS::KMS::Alias": Deployer.kms_alias,
    "AWS::Logs::LogGroup": Deployer.log_group,
}


# ---------------------------------------------------------------------------------------------
# what the code expects
# ---------------------------------------------------------------------------------------------
def rust_consts(path: str, module: str | None = None) -> dict[str, str]:
    """`pub const NAME: &str = "value";` of a Rust file (of one inline `pub mod` when named)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if module:
        m = re.search(r"pub mod " + re.escape(module) + r"\s*\{(.*?)\n\}", text, re.S)
        if not m:
            raise SystemExit(f"{path}: no `pub mod {module}`")
        text = m.group(1)
    return dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', text))


# ---------------------------------------------------------------------------------------------
# deploy and check
# ---------------------------------------------------------------------------------------------
class Checks:
    def __init__(self):
        self.failures: list[str] = []
        self.passed = 0

    def eq(self, what: str, got: Any, want: Any) -> None:
        if got == want:
            self.passed += 1
            print(f"  ok    {what}: {got!r}" if len(repr(got)) < 90 else f"  ok    {what}")
        else:
            self.failures.append(f"{what}: got {got!r}, want {want!r}")
            print(f"  FAIL  {what}: got {got!r}, want {want!r}")

    def true(self, what: str, condition: bool, detail: str = "") -> None:
        if condition:
            self.passed += 1
            print(f"  ok    {what}")
        else:
            self.failures.append(f"{what} {detail}".strip())
            print(f"  FAIL  {what} {detail}".rstrip())


def statements(policy: Any) -> list[dict]:
    if isinstance(policy, str):
        policy = json.loads(policy)
    found = policy.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def deploy(args: argparse.Namespace) -> int:
    root = args.root
    overrides = dict(kv.split("=", 1) for kv in args.parameter)
    with open(args.transformed, encoding="utf-8") as f:
        doc = json.load(f)
    try:
        t = Template(doc, overrides)
    except Unresolvable as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    d = Deployer(args.endpoint)
    checks = Checks()

    created: list[tuple[str, str]] = []
    skipped: list[tuple[str, str, str]] = []
    resolved: dict[str, dict] = {}
    print(f"==> creating resources ({len(t.resources)} in the transformed template, "
          f"stack {STACK_NAME}, {REGION}, account {ACCOUNT_ID})")
    try:
        for logical_id in t.order():
            resource = t.resources[logical_id]
            rtype = resource["Type"]
            if not t.active(logical_id):
                skipped.append((logical_id, rtype, f"condition {resource['Condition']} is false"))
                continue
            props = t.resolve(resource.get("Properties") or {})
            resolved[logical_id] = props
            handler = HANDLERS.get(rtype)
            if handler is None:
                placeholder = f"skipped:{logical_id}"
                t.physical[logical_id] = (placeholder, {"*": placeholder})
                skipped.append((logical_id, rtype, "not deployed to the emulator"))
                continue
            p = Props(logical_id, props)
            started = time.monotonic()
            ref, attrs = handler(d, p)
            if p.left_over():
                checks.true(f"{logical_id}: every property applied", False,
                            f"(smoke-deploy does not map {', '.join(p.left_over())} of {rtype}: "
                            "add it to scripts/smoke_deploy.py)")
            t.physical[logical_id] = (ref, attrs)
            created.append((logical_id, rtype))
            print(f"  created {rtype:<24} {logical_id:<24} {ref}  ({(time.monotonic() - started) * 1000:.0f} ms)")
        outputs = {k: t.resolve(v.get("Value")) for k, v in (doc.get("Outputs") or {}).items()
                   if "Condition" not in v or t.condition(v["Condition"])}
    except Unresolvable as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # botocore ClientError and the like: the emulator refused a property
        print(f"FAILED while creating {logical_id} ({rtype}): {e}", file=sys.stderr)
        return 1

    print("\n==> skipped (not emulated here, or condition false):")
    for logical_id, rtype, why in skipped:
        print(f"  skipped {rtype:<34} {logical_id:<36} {why}")

    # ------------------------------------------------------------------------------------------
    defaults = rust_consts(os.path.join(root, "crates/reactor-monitor/src/config.rs"), "defaults")
    env_names = rust_consts(os.path.join(root, "crates/reactor-monitor/src/config.rs"), "env")
    attr = rust_consts(os.path.join(root, "crates/reactor-monitor/src/adapters/dynamodb.rs"), "attr")
    key_prefix = rust_consts(os.path.join(root, "crates/reactor-monitor/src/adapters/s3.rs"))["KEY_PREFIX"]
    by_type: dict[str, list[str]] = {}
    for logical_id, rtype in created:
        by_type.setdefault(rtype, []).append(logical_id)

    def one(rtype: str, name_hint: str = "") -> str:
        ids = [i for i in by_type.get(rtype, []) if name_hint in i]
        if len(ids) != 1:
            raise SystemExit(f"FAILED: expected one {rtype} {name_hint!r}, the template has {ids}")
        return ids[0]

    ref = lambda logical_id: t.physical[logical_id][0]  # noqa: E731

    def name_check(what: str, got: str, parameter: str, default_key: str) -> None:
        """The template's default is the code's (crates/reactor-monitor/src/config.rs), and the name is the parameter's."""
        spec = (doc.get("Parameters") or {}).get(parameter)
        checks.true(f"{what} name is the parameter {parameter}", spec is not None, "(no such parameter)")
        if spec is not None:
            checks.eq(f"{parameter} default = config.rs defaults::{default_key}", spec.get("Default"),
                      defaults[default_key])
            checks.eq(f"{what} name = {parameter}", got, t.params[parameter])
    att = lambda logical_id, a: t.physical[logical_id][1][a]  # noqa: E731

    print("\n==> Kinesis stream")
    stream_id = one("AWS::Kinesis::Stream")
    stream = d.kinesis.describe_stream_summary(StreamName=ref(stream_id))["StreamDescriptionSummary"]
    name_check("stream", stream["StreamName"], "StreamName", "STREAM_NAME")
    checks.eq("status", stream["StreamStatus"], "ACTIVE")
    checks.eq("encryption", stream.get("EncryptionType"), "KMS")
    checks.eq("encryption key", stream.get("KeyId"), (resolved[stream_id].get("StreamEncryption") or {}).get("KeyId"))
    mode = stream.get("StreamModeDetails", {}).get("StreamMode")
    checks.eq("stream mode = StreamMode", mode, t.params.get("StreamMode", mode))
    if mode == "PROVISIONED" and "StreamShardCount" in t.params:
        checks.eq("open shards = StreamShardCount", stream["OpenShardCount"], int(t.params["StreamShardCount"]))
    checks.eq("retention hours", stream["RetentionPeriodHours"], int(resolved[stream_id]["RetentionPeriodHours"]))

    print("\n==> DynamoDB table")
    table_id = one("AWS::DynamoDB::Table", "Indications")
    table = d.dynamodb.describe_table(TableName=ref(table_id))["Table"]
    name_check("table", table["TableName"], "TableName", "TABLE_NAME")
    checks.eq("key schema = dynamodb.rs attr::REACTOR (HASH), attr::READING_ID (RANGE)",
              [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]],
              [(attr["REACTOR"], "HASH"), (attr["READING_ID"], "RANGE")])
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    checks.eq("key attributes are strings", types, {attr["REACTOR"]: "S", attr["READING_ID"]: "S"})
    checks.eq("billing mode (on-demand)", table.get("BillingModeSummary", {}).get("BillingMode"), "PAY_PER_REQUEST")
    checks.eq("encryption at rest", (table.get("SSEDescription") or {}).get("Status"), "ENABLED")
    checks.eq("deletion protection", table.get("DeletionProtectionEnabled"), True)
    backups = d.dynamodb.describe_continuous_backups(TableName=ref(table_id))["ContinuousBackupsDescription"]
    checks.eq("point-in-time recovery",
              backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus"), "ENABLED")
    ttl = d.dynamodb.describe_time_to_live(TableName=ref(table_id))["TimeToLiveDescription"]
    ttl_param = t.params.get("TableTtlAttributeName", "")
    checks.eq("TTL = TableTtlAttributeName", ttl.get("AttributeName", ""), ttl_param)
    if ttl_param in attr.values():
        checks.true("TTL attribute is not one the code writes", False, f"({ttl_param} is an attribute of every item)")

    print("\n==> DynamoDB episode table")
    episode_id = one("AWS::DynamoDB::Table", "Episode")
    episodes = d.dynamodb.describe_table(TableName=ref(episode_id))["Table"]
    checks.eq("episode key schema = attr::REACTOR (HASH)",
              [(k["AttributeName"], k["KeyType"]) for k in episodes["KeySchema"]], [(attr["REACTOR"], "HASH")])
    checks.eq("episode billing mode (on-demand)",
              episodes.get("BillingModeSummary", {}).get("BillingMode"), "PAY_PER_REQUEST")
    checks.eq("episode encryption at rest", (episodes.get("SSEDescription") or {}).get("Status"), "ENABLED")
    backups = d.dynamodb.describe_continuous_backups(TableName=ref(episode_id))["ContinuousBackupsDescription"]
    checks.eq("episode point-in-time recovery",
              backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus"), "ENABLED")

    print("\n==> SNS topics")
    alert_id = next((i for i in by_type.get("AWS::SNS::Topic", []) if
                     resolved[i]["TopicName"] == t.params.get("AlertTopicName")), None)
    checks.true("the alert topic is the AlertTopicName parameter's", alert_id is not None)
    topic_ids = by_type.get("AWS::SNS::Topic", [])
    for topic_id in topic_ids:
        attrs = d.sns.get_topic_attributes(TopicArn=ref(topic_id))["Attributes"]
        checks.eq(f"{topic_id} encrypted (KmsMasterKeyId)", attrs.get("KmsMasterKeyId"),
                  resolved[topic_id]["KmsMasterKeyId"])
        policy = attrs.get("Policy")
        policies = [i for i in by_type.get("AWS::SNS::TopicPolicy", []) if ref(topic_id) in resolved[i]["Topics"]]
        checks.true(f"{topic_id} has a topic policy", bool(policies))
        for st in statements(policy) if policies else []:
            checks.eq(f"{topic_id} policy {st.get('Sid')} names the topic", as_list(st["Resource"]), [ref(topic_id)])
    if alert_id:
        name_check("alert topic", att(alert_id, "TopicName"), "AlertTopicName", "ALERT_TOPIC_NAME")
    on_call_ids = [i for i in topic_ids if i != alert_id]
    for topic_id in on_call_ids:
        key = resolved[topic_id]["KmsMasterKeyId"]
        key_ids = [i for i in by_type.get("AWS::KMS::Key", []) if key in (ref(i), att(i, "Arn"))]
        checks.true(f"{topic_id} key is this stack's customer managed key", len(key_ids) == 1, f"({key})")
        for key_id in key_ids:
            checks.eq(f"{topic_id} key rotation", d.kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], True)
            key_policy = d.kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
            principals = [st.get("Principal", {}).get("Service") for st in statements(key_policy)]
            checks.true(f"{topic_id} key policy lets cloudwatch.amazonaws.com use it",
                        "cloudwatch.amazonaws.com" in principals)
            aliases = [a["AliasName"] for a in d.kms.list_aliases(KeyId=ref(key_id))["Aliases"]]
            checks.true(f"{topic_id} key alias {aliases}", bool(aliases), "(no alias targets the key)")
        topic_policy = d.sns.get_topic_attributes(TopicArn=ref(topic_id))["Attributes"].get("Policy", "{}")
        publishers = [st.get("Principal", {}).get("Service") for st in statements(topic_policy)
                      if st.get("Effect") == "Allow"]
        checks.true(f"{topic_id} policy lets CloudWatch alarms publish", "cloudwatch.amazonaws.com" in publishers)

    print("\n==> S3 dead-letter bucket")
    bucket_id = one("AWS::S3::Bucket", "DeadLetter")
    bucket = ref(bucket_id)
    if bucket == defaults["DEAD_LETTER_BUCKET"]:
        checks.eq("name = config.rs defaults::DEAD_LETTER_BUCKET", bucket, defaults["DEAD_LETTER_BUCKET"])
    else:
        # Bucket names are global: the template makes it unique with the account and Region.
        checks.eq("name = config.rs defaults::DEAD_LETTER_BUCKET + -<account>-<region>", bucket,
                  f"{defaults['DEAD_LETTER_BUCKET']}-{ACCOUNT_ID}-{REGION}")
    rules = d.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    checks.eq("default encryption", rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
    checks.eq("versioning", d.s3.get_bucket_versioning(Bucket=bucket).get("Status"), "Enabled")
    pab = d.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    checks.eq("public access blocked", sorted(k for k, v in pab.items() if v),
              ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"])
    lifecycle = d.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    checks.eq("lifecycle rules", sorted(r["ID"] for r in lifecycle),
              sorted(r["Id"] for r in resolved[bucket_id]["LifecycleConfiguration"]["Rules"]))
    checks.true("no lifecycle rule expires current objects (the evidence)",
                not any("Expiration" in r for r in lifecycle))
    for st in statements(d.s3.get_bucket_policy(Bucket=bucket)["Policy"]):
        checks.eq(f"bucket policy {st.get('Sid')} names the bucket", sorted(as_list(st["Resource"])),
                  sorted([att(bucket_id, "Arn"), f"{att(bucket_id, 'Arn')}/*"]))

    print("\n==> S3 on-failure bucket (whole batches the event source mapping gave up on)")
    failure_id = one("AWS::S3::Bucket", "OnFailure")
    failure_bucket = ref(failure_id)
    checks.eq("name = reactor-monitor-exhausted-batches-<account>-<region>", failure_bucket,
              f"reactor-monitor-exhausted-batches-{ACCOUNT_ID}-{REGION}")
    rules = d.s3.get_bucket_encryption(Bucket=failure_bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    checks.eq("default encryption", rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms")
    pab = d.s3.get_public_access_block(Bucket=failure_bucket)["PublicAccessBlockConfiguration"]
    checks.eq("public access blocked", sorted(k for k, v in pab.items() if v),
              ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"])
    lifecycle = d.s3.get_bucket_lifecycle_configuration(Bucket=failure_bucket)["Rules"]
    checks.eq("lifecycle rules", sorted(r["ID"] for r in lifecycle),
              sorted(r["Id"] for r in resolved[failure_id]["LifecycleConfiguration"]["Rules"]))
    checks.true("no lifecycle rule expires current objects (the only copy of unprocessed readings)",
                not any("Expiration" in r for r in lifecycle))
    for st in statements(d.s3.get_bucket_policy(Bucket=failure_bucket)["Policy"]):
        checks.eq(f"bucket policy {st.get('Sid')} names the bucket", sorted(as_list(st["Resource"])),
                  sorted([att(failure_id, "Arn"), f"{att(failure_id, 'Arn')}/*"]))

    for log_id in by_type.get("AWS::Logs::LogGroup", []):
        print("\n==> CloudWatch Logs log group")
        groups = d.logs.describe_log_groups(logGroupNamePrefix=ref(log_id))["logGroups"]
        checks.eq(f"{log_id} retention = LogRetentionInDays", groups[0].get("retentionInDays"),
                  int(t.params["LogRetentionInDays"]))

    print("\n==> what the skipped resources name (resolved against what was created)")
    functions = [i for i, r, _ in skipped if r == "AWS::Lambda::Function" and i in resolved]
    # The stream's function, and the scheduled silence check of alert episodes beside it.
    stream_functions = [i for i in functions if "SilenceCheck" not in i]
    fn_id = stream_functions[0] if len(stream_functions) == 1 else None
    checks.true("one stream function", fn_id is not None, f"({functions})")
    for silence_id in [i for i in functions if "SilenceCheck" in i]:
        env = resolved[silence_id].get("Environment", {}).get("Variables", {})
        checks.true(f"{silence_id} names the episode table and the on-call topic",
                    bool(env.get("EPISODE_TABLE_NAME")) and bool(env.get("ON_CALL_TOPIC_ARN")), f"({env})")
    if fn_id:
        env = resolved[fn_id].get("Environment", {}).get("Variables", {})
        checks.eq(f"{env_names['TABLE_NAME']} = the table", env.get(env_names["TABLE_NAME"]), ref(table_id))
        if "STREAM_NAME" in env_names:
            checks.eq(f"{env_names['STREAM_NAME']} = the stream", env.get(env_names["STREAM_NAME"]), ref(stream_id))
        if alert_id:
            checks.eq(f"{env_names['ALERT_TOPIC_ARN']} = the alert topic", env.get(env_names["ALERT_TOPIC_ARN"]),
                      ref(alert_id))
        checks.eq(f"{env_names['DEAD_LETTER_BUCKET']} = the bucket", env.get(env_names["DEAD_LETTER_BUCKET"]), bucket)
        missing = sorted(set(env_names.values()) - set(env))
        checks.true("the function gets every variable of config.rs `env`", not missing, f"(missing {missing})")
    for esm_id in [i for i, r, _ in skipped if r == "AWS::Lambda::EventSourceMapping" and i in resolved]:
        esm = resolved[esm_id]
        checks.eq(f"{esm_id} reads the stream", esm.get("EventSourceArn"), att(stream_id, "Arn"))
        checks.eq(f"{esm_id} on-failure destination = the on-failure bucket",
                  esm.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"), att(failure_id, "Arn"))
        checks.eq(f"{esm_id} MetricsConfig (DroppedEventCount, OnFailureDestinationDeliveredEventCount)",
                  esm.get("MetricsConfig"), {"Metrics": ["EventCount"]})
        checks.eq(f"{esm_id} reports batch item failures", esm.get("FunctionResponseTypes"), ["ReportBatchItemFailures"])
        checks.eq(f"{esm_id} bisects on error", esm.get("BisectBatchOnFunctionError"), True)
        age = int(esm.get("MaximumRecordAgeInSeconds", -1))
        hours = int(resolved[stream_id]["RetentionPeriodHours"])
        checks.true(f"{esm_id} MaximumRecordAgeInSeconds ({age}) below the stream retention ({hours} h)",
                    age != -1 and age < hours * 3600)
        checks.true(f"{esm_id} MaximumRetryAttempts bounded", int(esm.get("MaximumRetryAttempts", -1)) >= 0)
    # Every ARN a role statement names (but "*") is one created above, or below it.
    created_arns = {att(i, "Arn") for i, _ in created if "Arn" in t.physical[i][1]}
    created_arns |= {ref(i) for i, r in created if r == "AWS::SNS::Topic"}
    # Functions are not deployed here: a role that invokes one (the scheduler's) names it by
    # the placeholder its ARN resolved to.
    created_arns |= {f"skipped:{i}.Arn" for i in functions}
    for role_id in [i for i, r, _ in skipped if r == "AWS::IAM::Role" and i in resolved]:
        for policy in resolved[role_id].get("Policies", []):
            for st in statements(policy["PolicyDocument"]):
                for resource in as_list(st.get("Resource", [])):
                    if resource == "*":
                        continue
                    base = next((a for a in created_arns if resource == a or resource.startswith(a + "/")), None)
                    checks.true(f"{role_id} {st.get('Sid')} names {resource}", base is not None,
                                "(not a resource of this stack)")
                if st.get("Sid") and "s3:PutObject" in as_list(st.get("Action")):
                    checks.true(f"{role_id} {st['Sid']} covers src/adapters/s3.rs KEY_PREFIX or the event "
                                "source mapping's aws/lambda/ keys",
                                as_list(st["Resource"]) in ([f"{att(bucket_id, 'Arn')}/{key_prefix}*"],
                                                            [f"{att(failure_id, 'Arn')}/aws/lambda/*"]),
                                f"({as_list(st['Resource'])})")
                if "s3:ListBucket" in as_list(st.get("Action")):
                    checks.eq(f"{role_id} {st.get('Sid')} lists only the on-failure bucket",
                              as_list(st["Resource"]), [att(failure_id, "Arn")])

    print("\n==> outputs")
    want_outputs = {"StreamName": ref(stream_id), "StreamArn": att(stream_id, "Arn"), "TableName": ref(table_id),
                    "DeadLetterBucketName": bucket, "OnFailureBucketName": failure_bucket}
    if alert_id:
        want_outputs["AlertTopicArn"] = ref(alert_id)
    for topic_id in on_call_ids:
        want_outputs["OnCallTopicArn"] = ref(topic_id)
    for key, value in want_outputs.items():
        checks.eq(f"output {key}", outputs.get(key), value)

    print("\n==> one write through each created sink, with the code's key and prefix")
    d.kinesis.put_record(StreamName=ref(stream_id), PartitionKey="smoke",
                         Data=b'{"temp": 812.5, "reactor": "smoke", "date": "2026-01-01T00:00:00Z"}')
    item = {attr["REACTOR"]: {"S": "smoke"}, attr["READING_ID"]: {"S": "2026-01-01T00:00:00Z#shard-0#1"}}
    d.dynamodb.put_item(TableName=ref(table_id), Item=item)
    checks.true("item readable by its key", "Item" in d.dynamodb.get_item(TableName=ref(table_id), Key=item))
    if alert_id:
        d.sns.publish(TopicArn=ref(alert_id), Subject="emergency", Message="smoke")
    checks.true("stream, table and topic accept writes", True)
    # The emulator evaluates bucket policies: over plain HTTP, DenyInsecureTransport applies.
    from botocore.exceptions import ClientError

    try:
        d.s3.put_object(Bucket=bucket, Key=f"{key_prefix}shard-0/1", Body=b"not json")
        denied = None
    except ClientError as e:
        denied = e.response.get("Error", {}).get("Code")
    checks.true("bucket refuses a write over plain HTTP (DenyInsecureTransport)", denied in ("403", "AccessDenied"),
                f"(got {denied or 'no error'})")
    try:
        d.s3.put_object(Bucket=failure_bucket, Key="aws/lambda/smoke/shard-0/2026/01/01/2026-01-01T00.00.00-x",
                        Body=b"{}")
        denied = None
    except ClientError as e:
        denied = e.response.get("Error", {}).get("Code")
    checks.true("on-failure bucket refuses a write over plain HTTP (DenyInsecureTransport)",
                denied in ("403", "AccessDenied"), f"(got {denied or 'no error'})")

    print(f"\ncreated {len(created)}: {', '.join(sorted({r for _, r in created}))}")
    print(f"skipped {len(skipped)}: {', '.join(sorted({r for _, r, _ in skipped}))}")
    print(f"checks  {checks.passed} passed, {len(checks.failures)} failed")
    for failure in checks.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if checks.failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("transform")
    tr.add_argument("source")
    tr.add_argument("target")
    dp = sub.add_parser("deploy")
    dp.add_argument("transformed")
    dp.add_argument("--endpoint", required=True)
    dp.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    dp.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    if args.command == "transform":
        transform(args.source, args.target)
        return 0
    if not re.match(r"^http://(127\.0\.0\.1|localhost)(:\d+)?/?$", args.endpoint):
        print(f"refusing a non-loopback endpoint: {args.endpoint}", file=sys.stderr)
        return 2
    return deploy(args)


if __name__ == "__main__":
    sys.exit(main())
