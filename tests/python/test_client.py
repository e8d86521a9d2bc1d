"""The official Python client against the real server: create, list, watch
with resource versions, patch, delete, and the API's error answers."""

import json
import queue
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def pod(name, labels=None):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(containers=[
            client.V1Container(name="app", image="nginx:1.25")]))


def configmap(name, data):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def deployment(name):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[
                    client.V1Container(name="app", image="nginx:1.25")]))))


def names(object_list):
    return sorted(item.metadata.name for item in object_list.items)


def status_of(error):
    """The Kubernetes Status an ApiException carries."""
    return json.loads(error.body)


def test_create_get_and_list_with_selectors(api, namespace):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_pod(namespace, pod("a", {"env": "prod", "tier": "web"}))
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert created.status.phase == "Pending"
    core.create_namespaced_pod(namespace, pod("b", {"env": "dev"}))
    core.create_namespaced_pod(namespace, pod("c", {"env": "test"}))

    fetched = core.read_namespaced_pod("a", namespace)
    assert fetched.metadata.uid == created.metadata.uid
    assert fetched.spec.containers[0].image == "nginx:1.25"

    assert names(core.list_namespaced_pod(namespace)) == ["a", "b", "c"]
    assert names(core.list_namespaced_pod(
        namespace, label_selector="env in (prod,dev)")) == ["a", "b"]
    assert names(core.list_namespaced_pod(namespace, label_selector="!tier")) == ["b", "c"]
    assert names(core.list_namespaced_pod(
        namespace, field_selector="metadata.name=b")) == ["b"]

    everywhere = core.list_pod_for_all_namespaces(label_selector="tier=web")
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] \
        == [(namespace, "a")]


def test_list_pages_with_limit_and_continue(api, namespace):
    core = client.CoreV1Api(api)
    for i in range(5):
        core.create_namespaced_config_map(namespace, configmap(f"page-{i}", {"i": str(i)}))

    seen = []
    token = None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=2, _continue=token)
        assert len(page.items) <= 2
        seen += [item.metadata.name for item in page.items
                 if item.metadata.name.startswith("page-")]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(seen) == [f"page-{i}" for i in range(5)]


def change_configmap(core, namespace, name):
    """Creates, modifies and deletes a ConfigMap: the three watch event types."""
    core.create_namespaced_config_map(namespace, configmap(name, {"step": "one"}))
    core.patch_namespaced_config_map(name, namespace, {"data": {"step": "two"}})
    core.delete_namespaced_config_map(name, namespace)


def event_summary(event):
    obj = event["object"]
    return (event["type"], obj.metadata.name, (obj.data or {}).get("step"))


EXPECTED_EVENTS = [
    ("ADDED", "watched", "one"),
    ("MODIFIED", "watched", "two"),
    ("DELETED", "watched", "two"),
]


def test_watch_from_list_resource_version_receives_changes_in_order(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, configmap("before", {"step": "zero"}))
    version = core.list_namespaced_config_map(namespace).metadata.resource_version

    events = queue.Queue()
    started = threading.Event()
    w = watch.Watch()

    def follow():
        started.set()
        for event in w.stream(core.list_namespaced_config_map, namespace,
                              resource_version=version, timeout_seconds=60,
                              field_selector="metadata.name=watched"):
            events.put(event_summary(event))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    started.wait()
    change_configmap(core, namespace, "watched")

    received = [events.get(timeout=60) for _ in EXPECTED_EVENTS]
    w.stop()
    assert received == EXPECTED_EVENTS


def test_watch_replays_changes_made_after_the_resource_version(api, namespace):
    core = client.CoreV1Api(api)
    version = core.list_namespaced_config_map(namespace).metadata.resource_version
    change_configmap(core, namespace, "watched")

    received = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, namespace,
                          resource_version=version, timeout_seconds=60,
                          field_selector="metadata.name=watched"):
        received.append(event_summary(event))
        if len(received) == len(EXPECTED_EVENTS):
            w.stop()
    assert received == EXPECTED_EVENTS
    after = core.list_namespaced_config_map(namespace).metadata.resource_version
    assert int(after) > int(version)


def test_patch_strategic_merge_and_json(api, namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment("web"))

    sidecar = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:1.36"}]}}}}
    patched = apps.patch_namespaced_deployment("web", namespace, sidecar)
    assert sorted(c.name for c in patched.spec.template.spec.containers) \
        == ["app", "sidecar"]

    patched = apps.patch_namespaced_deployment("web", namespace, [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/patched", "value": "yes"},
    ])
    assert patched.spec.replicas == 4
    assert patched.metadata.labels == {"app": "web", "patched": "yes"}

    scaled = apps.patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": 6}})
    assert scaled.spec.replicas == 6
    assert apps.read_namespaced_deployment("web", namespace).spec.replicas == 6


def test_delete(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, pod("doomed"))
    core.delete_namespaced_pod("doomed", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("doomed", namespace)
    assert missing.value.status == 404
    assert status_of(missing.value)["reason"] == "NotFound"
    assert names(core.list_namespaced_pod(namespace)) == []


def test_update_with_a_stale_resource_version_is_409(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, configmap("shared", {"v": "1"}))
    stale = core.read_namespaced_config_map("shared", namespace)

    fresh = core.read_namespaced_config_map("shared", namespace)
    fresh.data = {"v": "2"}
    core.replace_namespaced_config_map("shared", namespace, fresh)

    stale.data = {"v": "lost update"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("shared", namespace, stale)
    assert conflict.value.status == 409
    assert status_of(conflict.value)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("shared", namespace).data == {"v": "2"}


def test_errors_are_kubernetes_statuses(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, configmap("once", {}))
    with pytest.raises(ApiException) as duplicate:
        core.create_namespaced_config_map(namespace, configmap("once", {}))
    assert duplicate.value.status == 409
    assert status_of(duplicate.value)["reason"] == "AlreadyExists"

    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(namespace, configmap("Bad_Name", {}))
    assert invalid.value.status == 422
    status = status_of(invalid.value)
    assert status["reason"] == "Invalid"
    assert "metadata.name" in [c.get("field") for c in status["details"]["causes"]]
    assert "Bad_Name" not in names(core.list_namespaced_config_map(namespace))
