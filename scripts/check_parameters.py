"""Every parameter of template.yaml against the API member it feeds.

A parameter's allowed values (AllowedValues, MinValue/MaxValue, AllowedPattern, MinLength/
MaxLength) must admit nothing the AWS API refuses: a value CloudFormation lets through and the
API rejects fails the deployment late, half-way through a stack update. The limits come from
botocore's service models (min, max, enum, pattern of the member's shape); where a model carries
no limit the API reference does, the limit is written below with its source.

Fails on a parameter it cannot map (add it to FEEDS), and on any range, list, length or pattern
that admits a value the API refuses. Usage: python check_parameters.py template.yaml
"""

import re
import string
import sys

import botocore.session
from samtranslator.yaml_helper import yaml_parse


class Api:
    """A member of an AWS API request: service, request shape, member (list members: the item)."""

    def __init__(self, service, shape, member, refine=None, source=None):
        self.service, self.shape, self.member = service, shape, member
        self.refine, self.source = refine or {}, source

    def __str__(self):
        return f"{self.service} {self.shape}.{self.member}"


class Own:
    """A setting of the function itself (an environment variable the function validates at
    start) or a value only CloudFormation reads: no AWS API member limits it beyond a string."""

    def __init__(self, why):
        self.why = why

    def __str__(self):
        return f"function setting: {self.why}"


# Limits botocore's models leave out, from the API references.
RECORD_AGE = {
    "allowed": lambda v: v == -1 or 60 <= v <= 604800,
    "source": "Lambda API reference, CreateEventSourceMapping MaximumRecordAgeInSeconds: "
    "-1 (infinite) or 60 to 604,800",
}
RETENTION_HOURS = {
    "min": 24,
    "max": 8760,
    "source": "Kinesis API reference, IncreaseStreamRetentionPeriod / DecreaseStreamRetentionPeriod: "
    "24 hours to 8760 hours (365 days)",
}
LOG_RETENTION_DAYS = {
    "enum": [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
             2922, 3288, 3653],
    "source": "CloudWatch Logs API reference, PutRetentionPolicy retentionInDays: possible values",
}
SNS_TOPIC_NAME = {
    "max": 256,
    "pattern": r"[A-Za-z0-9_-]{1,256}",
    "source": "SNS API reference, CreateTopic Name: up to 256 characters, ASCII letters, numbers, "
    "underscores and hyphens (a .fifo suffix only for FIFO topics, which this stack has none of)",
}
# CloudWatch PutMetricAlarm: "For an alarm with a period of 60 seconds or longer, the product of
# EvaluationPeriods and Period must not exceed 86,400 (one day)". The no-readings alarm uses a
# 60 s period: at most 1440 periods.
NO_READINGS_PERIODS = {
    "max": 86400 // 60,
    "source": "CloudWatch API reference, PutMetricAlarm EvaluationPeriods: "
    "EvaluationPeriods x Period <= 86,400 s (the alarm's Period is 60 s)",
}

FEEDS = {
    "Architecture": Api("lambda", "CreateFunctionRequest", "Architectures"),
    "CollectorLayer": Own("picks the collector layer's name (template condition)"),
    "AdotCollectorLayerVersion": Own("the tail of the ADOT layer's name, within CollectorLayerArn's limits"),
    "CommunityCollectorLayerVersion": Own("the tail of the community layer's name, within CollectorLayerArn's limits"),
    "CollectorLayerArn": Api("lambda", "CreateFunctionRequest", "Layers"),
    "CollectorConfigFile": Own("OPENTELEMETRY_COLLECTOR_CONFIG_URI, a file of the config layer"),
    "OtelPropagators": Own("OTEL_PROPAGATORS"),
    "JaegerOtlpEndpoint": Own("JAEGER_OTLP_ENDPOINT, read by collector-jaeger.yaml"),
    "EnableTransactionSearch": Own("a template condition"),
    "TransactionSearchIndexingPercentage": Own(
        "AWS::XRay::TransactionSearchConfig IndexingPercentage (CloudFormation: 0 to 100)"
    ),
    "StreamName": Api("kinesis", "CreateStreamInput", "StreamName"),
    "StreamMode": Api("kinesis", "StreamModeDetails", "StreamMode"),
    "StreamShardCount": Api("kinesis", "CreateStreamInput", "ShardCount"),
    "StreamRetentionPeriodHours": Api(
        "kinesis", "IncreaseStreamRetentionPeriodInput", "RetentionPeriodHours", RETENTION_HOURS
    ),
    "TableName": Api("dynamodb", "CreateTableInput", "TableName"),
    "TableTtlAttributeName": Api("dynamodb", "TimeToLiveSpecification", "AttributeName"),
    "AlertTopicName": Api("sns", "CreateTopicInput", "Name", SNS_TOPIC_NAME),
    "OnCallTopicName": Api("sns", "CreateTopicInput", "Name", SNS_TOPIC_NAME),
    "OnCallEmail": Api("sns", "SubscribeInput", "Endpoint"),
    "WarningThresholdC": Own("WARNING_THRESHOLD_C"),
    "EmergencyThresholdC": Own("EMERGENCY_THRESHOLD_C"),
    "MaxInFlightRequests": Own("MAX_IN_FLIGHT_REQUESTS"),
    "DeadlineMarginMs": Own("DEADLINE_MARGIN_MS"),
    "StoreOnlyTraceRatio": Own("STORE_ONLY_TRACE_RATIO"),
    "MaxRecordSpansPerTrace": Own("MAX_RECORD_SPANS_PER_TRACE"),
    "FunctionMemorySize": Api("lambda", "CreateFunctionRequest", "MemorySize"),
    "FunctionTimeoutSeconds": Api("lambda", "CreateFunctionRequest", "Timeout"),
    "LogRetentionInDays": Api(
        "logs", "PutRetentionPolicyRequest", "retentionInDays", LOG_RETENTION_DAYS
    ),
    "ApplicationLogLevel": Api("lambda", "LoggingConfig", "ApplicationLogLevel"),
    "BatchSize": Api("lambda", "CreateEventSourceMappingRequest", "BatchSize"),
    "MaximumBatchingWindowInSeconds": Api(
        "lambda", "CreateEventSourceMappingRequest", "MaximumBatchingWindowInSeconds"
    ),
    "MaximumRetryAttempts": Api("lambda", "CreateEventSourceMappingRequest", "MaximumRetryAttempts"),
    "MaximumRecordAgeInSeconds": Api(
        "lambda", "CreateEventSourceMappingRequest", "MaximumRecordAgeInSeconds", RECORD_AGE
    ),
    "NoReadingsAlarmMinutes": Api(
        "cloudwatch", "PutMetricAlarmInput", "EvaluationPeriods", NO_READINGS_PERIODS
    ),
    "IteratorAgeAlarmMs": Api("cloudwatch", "PutMetricAlarmInput", "Threshold"),
    "ParseErrorAlarmPercent": Api("cloudwatch", "PutMetricAlarmInput", "Threshold"),
}

# A valid value for the parameters whose default is empty ("none"), so that their pattern is
# probed too.
SAMPLES = {
    "CollectorLayerArn": "arn:aws:lambda:us-east-1:901920570463:layer:aws-otel-collector-arm64-ver-0-156-0:1",
    "TableTtlAttributeName": "expires_at",
    "OnCallEmail": "on-call@example.com",
}

SESSION = botocore.session.get_session()
PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


def api_limits(api):
    """(kind, limits) of the member's shape, with the API reference's refinements applied."""
    shape = SESSION.get_service_model(api.service).shape_for(api.shape).members[api.member]
    if shape.type_name == "list":
        shape = shape.member
    limits = {k: shape.metadata[k] for k in ("min", "max", "pattern") if k in shape.metadata}
    if getattr(shape, "enum", None):
        limits["enum"] = list(shape.enum)
    limits.update(api.refine)
    kind = "number" if shape.type_name in ("integer", "long", "double", "float") else "string"
    return kind, shape.type_name, limits


def number_ok(value, type_name, limits):
    if type_name in ("integer", "long") and value != int(value):
        return False
    if "enum" in limits and value not in limits["enum"]:
        return False
    if "min" in limits and value < limits["min"]:
        return False
    if "max" in limits and value > limits["max"]:
        return False
    return limits.get("allowed", lambda v: True)(value)


def string_ok(value, limits):
    if "enum" in limits and value not in limits["enum"]:
        return False
    if len(value) < limits.get("min", 0) or len(value) > limits.get("max", sys.maxsize):
        return False
    return "pattern" not in limits or re.fullmatch(limits["pattern"], value) is not None


def admits(param, text):
    """Whether CloudFormation accepts `text` for the parameter."""
    if "AllowedValues" in param and text not in [str(v) for v in param["AllowedValues"]]:
        return False
    if param.get("Type") == "Number":
        try:
            value = float(text)
        except ValueError:
            return False
        return float(param.get("MinValue", -1e300)) <= value <= float(param.get("MaxValue", 1e300))
    if not param.get("MinLength", 0) <= len(text) <= param.get("MaxLength", sys.maxsize):
        return False
    pattern = param.get("AllowedPattern")
    return pattern is None or re.fullmatch(pattern, text) is not None


def check_number(name, param, type_name, limits, api):
    problems = []
    if "AllowedValues" in param:
        candidates = [float(v) for v in param["AllowedValues"]]
    else:
        # Every integer around the limits either side admits, and far beyond them.
        edges = {-(10**9), -2, -1, 0, 1, 10**9}
        for key in ("MinValue", "MaxValue"):
            if key in param:
                edges.add(int(float(param[key])))
        for key in ("min", "max"):
            if key in limits:
                edges.add(int(limits[key]))
        for extra in limits.get("enum", []):
            edges.add(int(extra))
        candidates = set()
        for edge in edges:
            candidates.update(range(edge - 100, edge + 101))
        if "allowed" in limits:  # a predicate: walk the whole API range too
            candidates.update(range(int(limits.get("min", -1000)) - 1, int(limits.get("max", 10**6)) + 2))
        if type_name not in ("integer", "long"):
            candidates.update(c + 0.5 for c in list(candidates))
        candidates = sorted(candidates)
    if param.get("Type") == "Number" and "AllowedValues" not in param:
        for key, bound, side in (("MinValue", "min", "below"), ("MaxValue", "max", "above")):
            if bound in limits and key not in param:
                problems.append(f"{name}: no {key}, the API refuses values {side} {limits[bound]} ({api})")
    refused = [c for c in candidates if admits(param, fmt(c)) and not number_ok(c, type_name, limits)]
    if refused:
        shown = ", ".join(fmt(v) for v in refused[:5]) + (", ..." if len(refused) > 5 else "")
        problems.append(f"{name}: admits {shown}, which {api} refuses ({describe(limits)})")
    return problems


def fmt(value):
    return str(int(value)) if float(value) == int(value) else str(value)


def check_string(name, param, limits, api):
    problems = []
    if "enum" in limits and "AllowedValues" not in param:
        problems.append(f"{name}: no AllowedValues, {api} takes only {limits['enum']}")
    samples = [str(v) for v in param.get("AllowedValues", [])]
    default = str(param.get("Default", ""))
    if default:
        samples.append(default)
    if name in SAMPLES:
        samples.append(SAMPLES[name])
    samples = [s for s in samples if admits(param, s)]
    probes = set(samples)
    for sample in samples:
        for i in range(len(sample) + 1):
            for ch in PRINTABLE:
                probes.add(sample[:i] + ch + sample[i + 1:])
                probes.add(sample[:i] + ch + sample[i:])
        for ch in set(sample) | {"a", "0"}:
            for n in (limits.get("max", 0) + 1, 256, 257, 1025, 2049):
                probes.add((sample + ch * n)[:n])
    if limits.get("min", 0) > 0:
        probes.add("")
    if "max" in limits and "AllowedValues" not in param and not bounded(param, limits["max"]):
        problems.append(f"{name}: no length limit, {api} takes at most {limits['max']} characters")
    for probe in sorted(probes):
        if probe == "" and default == "" and "Default" in param:
            continue  # empty = the template's documented "none" (a Condition leaves the member out)
        if admits(param, probe) and not string_ok(probe, limits):
            problems.append(f"{name}: admits {probe[:60]!r} (length {len(probe)}), which {api} refuses "
                            f"({describe(limits)})")
            break
    return problems


def bounded(param, most):
    """Whether the parameter's pattern or MaxLength keeps values at most `most` long."""
    if param.get("MaxLength", sys.maxsize) <= most:
        return True
    pattern = param.get("AllowedPattern")
    if pattern is None:
        return False
    return not any(re.fullmatch(pattern, "a" * (most + 1) if ch is None else ch * (most + 1))
                   for ch in (None, "0", "_", "-", "."))


def describe(limits):
    parts = [f"{k} {v}" for k, v in limits.items() if k not in ("allowed", "source")]
    if "source" in limits:
        parts.append(f"source: {limits['source']}")
    return "; ".join(parts) or "no limit"


def main(path):
    with open(path, encoding="utf-8") as f:
        parameters = (yaml_parse(f.read()).get("Parameters") or {})
    problems = []
    for name, param in parameters.items():
        feed = FEEDS.get(name)
        if feed is None:
            problems.append(f"{name}: feeds no API member this check knows: map it in FEEDS")
            continue
        if isinstance(feed, Own):
            print(f"{name}: {feed}")
            continue
        kind, type_name, limits = api_limits(feed)
        found = (check_number(name, param, type_name, limits, feed) if kind == "number"
                 else check_string(name, param, limits, feed))
        default = param.get("Default")
        if default is not None and str(default) != "" and not (
            number_ok(float(default), type_name, limits) if kind == "number"
            else string_ok(str(default), limits)
        ):
            found.append(f"{name}: default {default!r} is refused by {feed}")
        problems += found
        print(f"{name}: {feed} ({describe(limits)}): {'ok' if not found else 'WIDER THAN THE API'}")
    for stale in sorted(set(FEEDS) - set(parameters)):
        problems.append(f"{stale}: in FEEDS but not a parameter of {path}")
    for problem in problems:
        print(f"FAILED {problem}")
    print(f"{len(parameters)} parameters, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
