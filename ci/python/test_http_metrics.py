"""nsqd's HTTP API from a real HTTP client, and /metrics read by the Prometheus client library's
own text-format parser: publishes over HTTP to topics on both shards come back in /stats and
/metrics."""

import json
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from harness import free_port, start_daemon


def http(method, url, body=b""):
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


def test_publish_over_http_and_read_stats_and_metrics(tmp_path):
    http_port = free_port()
    daemon = start_daemon(
        tmp_path,
        default_args=False,
        extra_args=[f"--http-address=127.0.0.1:{http_port}", "--shards=2", f"--data-path={tmp_path}"],
    )
    try:
        base = f"http://127.0.0.1:{http_port}"
        topics = [f"metrics-{i}" for i in range(8)]  # spread over both shards
        for n, topic in enumerate(topics):
            assert http("POST", f"{base}/pub?topic={topic}", b"one") == (200, b"OK")
            assert http("POST", f"{base}/mpub?topic={topic}", b"a\nb\n" * (n + 1)) == (200, b"OK")
            assert http("POST", f"{base}/channel/create?topic={topic}&channel=ch")[0] == 200

        status, body = http("GET", f"{base}/stats?format=json")
        assert status == 200
        stats = json.loads(body)
        counts = {t["topic_name"]: t["message_count"] for t in stats["topics"]}
        assert counts == {t: 1 + 2 * (n + 1) for n, t in enumerate(topics)}

        status, body = http("GET", f"{base}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        published = {
            s.labels["topic"]: s.value
            for s in families["squall_topic_messages"].samples
            if s.name == "squall_topic_messages_total"
        }
        assert published == {t: float(1 + 2 * (n + 1)) for n, t in enumerate(topics)}
        depth = {s.labels["topic"]: s.value for s in families["squall_topic_depth"].samples}
        assert all(v == 0 for v in depth.values()), depth  # moved into the channels
        assert families["squall_channel_depth"].type == "gauge"
        assert families["process_resident_memory_bytes"].samples[0].value > 0
    finally:
        daemon.stop_and_check()
