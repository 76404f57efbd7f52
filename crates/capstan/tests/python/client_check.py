"""The official Python client against Capstan: CRUD and watch.

Run by crates/capstan/tests/clients.rs with the admin kubeconfig path as
the only argument; exits non-zero (with a traceback) on any mismatch.
"""
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()

body = client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="from-python", labels={"client": "python"}),
    data={"greeting": "hello"},
)
created = core.create_namespaced_config_map("default", body)
assert created.metadata.uid, created

listed = core.list_namespaced_config_map("default", label_selector="client=python")
assert [cm.metadata.name for cm in listed.items] == ["from-python"], listed

got = core.read_namespaced_config_map("from-python", "default")
assert got.data == {"greeting": "hello"}, got

# Watch from the list's resourceVersion while another thread changes the object.
def change():
    core.patch_namespaced_config_map("from-python", "default", {"data": {"greeting": "bye"}})

w = watch.Watch()
timer = threading.Timer(0.5, change)
timer.start()
seen = None
for event in w.stream(core.list_namespaced_config_map, "default",
                      resource_version=listed.metadata.resource_version, timeout_seconds=10):
    if event["type"] == "MODIFIED" and event["object"].metadata.name == "from-python":
        seen = event["object"].data["greeting"]
        w.stop()
assert seen == "bye", seen

core.delete_namespaced_config_map("from-python", "default")
try:
    core.read_namespaced_config_map("from-python", "default")
    raise AssertionError("still there after delete")
except ApiException as e:
    assert e.status == 404, e

print("python client: ok")
