#!/usr/bin/env bash
# Offline tests of the Terraform deployment (terraform/README.md, "Tests"):
#   1. terraform fmt -check -recursive; init + validate of the module and
#      the example;
#   2. terraform test: plan-only checks with mock_provider "aws";
#   3. apply + destroy of the example against moto_server (EC2, IAM, S3,
#      SSM, STS emulated on a free loopback port); destroy leaves nothing;
#   4. the configuration the module wrote is one Tidelog runs and that
#      forms a cluster: the three brokers' tidelog.toml are taken from their
#      cloud-init user data, their addresses (client, metrics, cluster,
#      voters) are swapped for loopback ports, data_dir for temp dirs and
#      the bucket for a local file:// one, every other key stays as
#      rendered; the real tidelog binary runs the three together, and
#      `tidelog cluster status --json` must show brokers 1-3 alive with one
#      controller, a 6-partition topic created through one broker must land
#      on all three, and records produced through one broker are consumed
#      through another; the systemd unit goes through systemd-analyze
#      verify and the user data through cloud-init schema when those tools
#      are installed.
# Prints one "PASS: ..." or "FAIL: ..." line per check and a final
# "terraform: N passed, M failed"; exits non-zero on any failure.
#
# Needs: terraform (>= 1.5) and a filesystem mirror of hashicorp/aws (found
# with find, as below); moto_server ($MOTO_SERVER, target/venv-test, or
# PATH) with boto3 beside it; the tidelog binary ($TIDELOG_BIN, else
# target/debug/tidelog; built with cargo if missing).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

passed=0
failed=0
pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
info() { echo "INFO: $*"; }
finish() {
  echo
  echo "terraform: ${passed} passed, ${failed} failed"
  [ "$failed" -eq 0 ]
  exit $?
}

# --- tools -------------------------------------------------------------
if ! command -v terraform >/dev/null 2>&1; then
  fail "terraform is not installed (need >= 1.5 on PATH; https://developer.hashicorp.com/terraform/install)"
  finish
fi
# The mirror: the first such directory outside any .terraform working dir.
mirror=$(find / \( -path /proc -o -name .terraform \) -prune -o -path '*registry.terraform.io/hashicorp/aws' -type d -print 2>/dev/null | head -n 1)
if [ -z "$mirror" ]; then
  fail "no filesystem mirror of hashicorp/aws found (find / -path '*registry.terraform.io/hashicorp/aws'); run 'terraform providers mirror DIR' on a connected machine"
  finish
fi
mirror_root=${mirror%/registry.terraform.io/hashicorp/aws}

work=$(mktemp -d "${TMPDIR:-/tmp}/tidelog-tf.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/terraformrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror_root"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
EOF
export TF_CLI_CONFIG_FILE="$work/terraformrc"
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
unset TF_DATA_DIR
info "$(terraform version | head -n 1), provider mirror $mirror_root"

# Work on a copy so nothing (.terraform, lock files, state) lands in the repo.
mkdir -p "$work/tf"
cp -r "$here/modules" "$here/examples" "$work/tf/"
cp -r "$here/tests" "$work/tf/tests"
rm -f "$work/tf/modules/tidelog-cluster/tests"
ln -s ../../tests "$work/tf/modules/tidelog-cluster/tests"
module="$work/tf/modules/tidelog-cluster"
example="$work/tf/examples/three-brokers"

# --- 1. fmt and validate -----------------------------------------------
if out=$(terraform fmt -check -recursive -diff "$here" 2>&1); then
  pass "terraform fmt -check -recursive"
else
  echo "$out"
  fail "terraform fmt -check -recursive (run: terraform fmt -recursive terraform/)"
fi
for dir in "$module" "$example"; do
  name=${dir#"$work/tf/"}
  if out=$(cd "$dir" && terraform init -backend=false -no-color 2>&1 && terraform validate -no-color 2>&1); then
    pass "terraform validate $name"
  else
    echo "$out"
    fail "terraform validate $name"
  fi
done

# --- 2. terraform test with the mocked provider --------------------------
(cd "$module" && terraform test -no-color) >"$work/tftest.log" 2>&1
tftest_rc=$?
cat "$work/tftest.log"
while read -r file run result; do
  if [ "$result" = pass ]; then pass "terraform test $file $run"; else fail "terraform test $file $run"; fi
done < <(awk '/^tests\/.*\.tftest\.hcl\.\.\. in progress/ { f = $1; sub(/\.\.\.$/, "", f) }
              /^  run "/ { r = $2; gsub(/"|\.\.\./, "", r); print f, r, $3 }' "$work/tftest.log")
if [ "$tftest_rc" -ne 0 ] || ! grep -q '^Success!' "$work/tftest.log"; then
  fail "terraform test (exit $tftest_rc)"
fi

# --- 3. apply and destroy against moto -----------------------------------
moto=${MOTO_SERVER:-}
[ -n "$moto" ] || { [ -x "$root/target/venv-test/bin/moto_server" ] && moto="$root/target/venv-test/bin/moto_server"; }
[ -n "$moto" ] || moto=$(command -v moto_server || true)
if [ -z "$moto" ]; then
  fail "moto_server not found (set MOTO_SERVER, or run tests/run-all.sh which installs it into target/venv-test)"
  finish
fi
py="$(dirname "$moto")/python3"
[ -x "$py" ] || py=python3
if ! "$py" -c 'import boto3' 2>/dev/null; then
  fail "boto3 is not importable by $py (install moto[server] into a venv and set MOTO_SERVER)"
  finish
fi
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
"$moto" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$endpoint/moto-api/" 2>/dev/null && break
  sleep 0.1
done
if ! curl -fsS -o /dev/null "$endpoint/moto-api/"; then
  cat "$work/moto.log"
  fail "moto_server did not start on $endpoint"
  finish
fi
info "moto_server on $endpoint"

cat >"$work/aws.py" <<'EOF'
# Helpers against the emulator: make a VPC with three subnets, or list what
# is left after destroy.
import json, sys
import boto3
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="test", aws_secret_access_key="test")
ec2 = boto3.client("ec2", **kw)
if sys.argv[2] == "network":
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24",
                                 AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in enumerate("abc", 1)]
    print(json.dumps({"vpc_id": vpc, "subnet_ids": subnets,
                      "force_destroy_bucket": True,
                      "allowed_client_cidr_blocks": ["10.0.0.0/16"],
                      "metrics_allowed_cidr_blocks": ["10.0.9.0/24"]}))
elif sys.argv[2] in ("created", "leftovers"):
    vpc = sys.argv[3]
    iam = boto3.client("iam", **kw)
    s3 = boto3.client("s3", **kw)
    terminated = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                  for i in r["Instances"] if i["State"]["Name"] == "terminated"}
    found = {
        "instances": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
                      for i in r["Instances"] if i["State"]["Name"] != "terminated"],
        "security_groups": [g["GroupId"] for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
            if g["GroupName"] != "default"],
        # moto keeps terminated instances with their primary interfaces;
        # AWS deletes those with the instance, so they do not count.
        "network_interfaces": [n["NetworkInterfaceId"] for n in ec2.describe_network_interfaces(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkInterfaces"]
            if n.get("Attachment", {}).get("InstanceId") not in terminated],
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"]],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"]],
        "instance_profiles": [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]],
        "role_policies": [p for r in iam.list_roles()["Roles"]
                          for p in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]],
    }
    print(json.dumps(found))
EOF

cat >"$example/emulator_override.tf" <<EOF
# Written by terraform/test.sh: points the example's provider at moto.
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {
    ec2     = "$endpoint"
    iam     = "$endpoint"
    s3      = "$endpoint"
    sts     = "$endpoint"
    ssm     = "$endpoint"
    route53 = "$endpoint"
  }
}
EOF
if ! "$py" "$work/aws.py" "$endpoint" network >"$example/emulator.auto.tfvars.json"; then
  fail "create a VPC and subnets in moto"
  finish
fi
vpc=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["vpc_id"])' "$example/emulator.auto.tfvars.json")

applied=0
if (cd "$example" && terraform apply -auto-approve -no-color) >"$work/apply.log" 2>&1; then
  pass "terraform apply examples/three-brokers against moto"
  applied=1
else
  tail -n 40 "$work/apply.log"
  fail "terraform apply examples/three-brokers against moto"
fi

if [ "$applied" = 1 ]; then
  (cd "$example" && terraform output -json) >"$work/outputs.json"
  (cd "$example" && terraform state list) >"$work/state.txt"
  want='module.tidelog.aws_s3_bucket.this[0]
module.tidelog.aws_s3_bucket_public_access_block.this[0]
module.tidelog.aws_s3_bucket_server_side_encryption_configuration.this[0]
module.tidelog.aws_s3_bucket_lifecycle_configuration.this[0]
module.tidelog.aws_iam_role.broker
module.tidelog.aws_iam_role_policy.broker
module.tidelog.aws_iam_instance_profile.broker
module.tidelog.aws_security_group.broker
module.tidelog.aws_instance.broker["1"]
module.tidelog.aws_instance.broker["2"]
module.tidelog.aws_instance.broker["3"]'
  missing=$(comm -23 <(echo "$want" | sort) <(sort "$work/state.txt"))
  if [ -z "$missing" ]; then
    pass "apply created the bucket, role, policy, instance profile, security group and 3 instances"
  else
    fail "apply did not create: $missing"
  fi
  created=$("$py" "$work/aws.py" "$endpoint" created "$vpc")
  if "$py" - "$created" <<'EOF'; then
import json, sys
f = json.loads(sys.argv[1])
ok = (len(f["instances"]) == 3 and len(f["security_groups"]) == 1 and len(f["buckets"]) == 1
      and len(f["roles"]) == 1 and len(f["instance_profiles"]) == 1 and f["role_policies"] == ["tidelog-bucket"])
sys.exit(0 if ok else 1)
EOF
    pass "the emulator holds 3 running instances, 1 security group, 1 bucket, 1 role with its policy and profile"
  else
    fail "the emulator does not hold what apply reported: $created"
  fi
fi

# --- 4. the rendered configuration runs on the real binary ------------------
bin=${TIDELOG_BIN:-$root/target/debug/tidelog}
if [ "$applied" = 1 ] && [ ! -x "$bin" ]; then
  info "building tidelog ($bin missing)"
  (cd "$root" && cargo build --bin tidelog) || true
fi
if [ "$applied" = 1 ] && [ ! -x "$bin" ]; then
  fail "no tidelog binary at $bin (set TIDELOG_BIN)"
elif [ "$applied" = 1 ]; then
  # Extract every file the user data writes, exactly as cloud-init would.
  if "$py" - "$work/outputs.json" "$work/render" <<'EOF'; then
import json, os, sys, yaml
out = json.load(open(sys.argv[1]))
dest = sys.argv[2]
for node, ud in out["user_data"]["value"].items():
    assert ud.startswith("#cloud-config\n"), "user data of %s is not cloud-config" % node
    doc = yaml.safe_load(ud)
    d = os.path.join(dest, node)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "user-data.yaml"), "w").write(ud)
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    for path, content in files.items():
        open(os.path.join(d, os.path.basename(path)), "w").write(content)
    assert files["/etc/tidelog/tidelog.toml"] == out["broker_configs"]["value"][node], "tidelog.toml differs from broker_configs"
    assert "/etc/tidelog/cluster.toml" not in files, "the cluster keys belong in tidelog.toml, not a separate cluster.toml"
    assert files["/etc/systemd/system/tidelog.service"] == out["systemd_units"]["value"][node]
EOF
    pass "user data of each broker is cloud-config writing the tidelog.toml and unit of the outputs (no separate cluster.toml)"
  else
    fail "extract the files of the user data"
  fi

  # The module writes these keys in tidelog.toml (the example's
  # tidelog_settings add log_format and log_retention_ms); tidelog refuses
  # any key it does not know (deny_unknown_fields in server/src/config.rs).
  want_keys="advertised_address cluster_listen data_dir http_listen listen log_format log_retention_ms node_id object_store voters"
  # jpy FILE EXPR: evaluate a Python expression over the JSON file as j.
  jpy() { "$py" -c 'import json, sys; j = json.load(open(sys.argv[1])); r = eval(sys.argv[2]); print(r if not isinstance(r, bool) else ("true" if r else "false"))' "$@"; }
  bucket=$(jpy "$work/outputs.json" 'j["bucket_name"]["value"]')
  for node in 1 2 3; do
    d="$work/render/$node"
    [ -f "$d/tidelog.toml" ] || { fail "broker $node: no tidelog.toml rendered"; continue; }
    keys=$(grep -E '^[a-z_]+ = ' "$d/tidelog.toml" | cut -d' ' -f1 | sort | xargs)
    if [ "$keys" = "$want_keys" ]; then
      pass "broker $node: tidelog.toml holds the module's keys, cluster keys included ($keys)"
    else
      fail "broker $node: tidelog.toml keys are '$keys', expected '$want_keys'"
    fi
    # Broker N is at 10.0.N.10 (subnet N of the emulated VPC): it binds
    # that IP for the quorum, tells clients that IP, and every broker
    # names the same three voters at the private IPs peers reach.
    if grep -qx "node_id = $node" "$d/tidelog.toml" \
      && grep -qx "cluster_listen = \"10.0.$node.10:7072\"" "$d/tidelog.toml" \
      && grep -qx "advertised_address = \"10.0.$node.10:7070\"" "$d/tidelog.toml" \
      && grep -qx 'voters = "1=10.0.1.10:7072,2=10.0.2.10:7072,3=10.0.3.10:7072"' "$d/tidelog.toml" \
      && grep -qx "object_store = \"s3://$bucket/tidelog/broker-$node\"" "$d/tidelog.toml"; then
      pass "broker $node: node_id = $node, cluster_listen and advertised_address on its private IP, the three voters, object_store under broker-$node"
    else
      cat "$d/tidelog.toml"
      fail "broker $node: cluster keys, addresses or object_store of the rendered tidelog.toml"
    fi
  done

  # Run the three rendered configs as one cluster on loopback. Only
  # addresses change: each private IP:port (client, metrics, cluster, in
  # listen/http_listen/advertised_address/cluster_listen/voters) becomes
  # 127.0.0.1 with a distinct free port, data_dir a temp dir and the s3://
  # bucket a local file:// one (same prefix); every other key stays as
  # rendered. The brokers start as the unit starts them (--config, the
  # environment file).
  cat >"$work/rewrite.py" <<'EOF'
# rewrite.py RENDERED OUT NODE WORK PORTS_JSON: swap addresses for loopback.
# PORTS_JSON maps "N" to {client, metrics, cluster} loopback ports.
import json, re, sys
src, dst, node, work, ports = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
ip = {n: "10.0.%s.10" % n for n in ports}   # the emulated subnets' .10
def swap(value):
    for n, p in ports.items():
        value = value.replace(ip[n] + ":7070", "127.0.0.1:%d" % p["client"])
        value = value.replace(ip[n] + ":7072", "127.0.0.1:%d" % p["cluster"])
    return value
me = ports[node]
out, changed = [], []
for line in open(src).read().splitlines():
    m = re.match(r'^([a-z_]+) = (.*)$', line)
    key = m.group(1) if m else None
    new = line
    if key == "listen":
        new = 'listen = "127.0.0.1:%d"' % me["client"]
    elif key == "http_listen":
        new = 'http_listen = "127.0.0.1:%d"' % me["metrics"]
    elif key in ("advertised_address", "cluster_listen", "voters"):
        new = swap(line)
    elif key == "data_dir":
        new = 'data_dir = "%s/run/%s/data"' % (work, node)
    elif key == "object_store":
        new = re.sub(r'"s3://[^/]*/', '"file://%s/bucket/' % work, line)
    if new != line:
        changed.append(key)
    assert "10.0." not in new, "private address left in: " + new
    out.append(new)
open(dst, "w").write("\n".join(out) + "\n")
print(" ".join(sorted(changed)))
EOF
  # All nine ports from one process holding every socket at once, so no
  # two brokers are ever given the same port (separate calls can repeat).
  ports=$("$py" -c '
import json, socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
p = [s.getsockname()[1] for s in socks]
print(json.dumps({str(n + 1): {"client": p[3 * n], "metrics": p[3 * n + 1], "cluster": p[3 * n + 2]} for n in range(3)}))
')
  port_of() { "$py" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]][sys.argv[3]])' "$ports" "$1" "$2"; }
  bpids=()
  started=""
  for node in 1 2 3; do
    d="$work/render/$node"
    [ -f "$d/tidelog.toml" ] || continue
    mkdir -p "$work/run/$node" "$work/bucket/tidelog/broker-$node"
    if ! changed=$("$py" "$work/rewrite.py" "$d/tidelog.toml" "$work/run/$node/tidelog.toml" "$node" "$work" "$ports"); then
      fail "broker $node: rewrite the rendered addresses for loopback"
      continue
    fi
    if [ "$changed" != "advertised_address cluster_listen data_dir http_listen listen object_store voters" ]; then
      fail "broker $node: the loopback rewrite changed '$changed', expected exactly the addresses, data_dir and object_store"
      continue
    fi
    # shellcheck disable=SC2046
    env -i PATH="$PATH" HOME="$HOME" $(grep -E '^[A-Z_]+=' "$d/tidelog.env") \
      "$bin" serve --config "$work/run/$node/tidelog.toml" >"$work/run/$node/broker.log" 2>&1 &
    pids+=($!)
    bpids[$node]=$!
    started="$started $node"
  done
  ready=""
  for node in $started; do
    mport=$(port_of "$node" metrics)
    up=0
    # Ready means the broker has joined the quorum and reconciled its
    # topics, so this waits for the cluster to form (a few seconds).
    for _ in $(seq 1 300); do
      if curl -fsS -o /dev/null "http://127.0.0.1:$mport/readyz" 2>/dev/null; then up=1; break; fi
      kill -0 "${bpids[$node]}" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$up" = 1 ]; then
      pass "broker $node: tidelog serve starts with the rendered tidelog.toml and tidelog.env and becomes ready in the cluster (/readyz)"
      ready="$ready $node"
    else
      tail -n 30 "$work/run/$node/broker.log"
      fail "broker $node: tidelog serve --config <rendered tidelog.toml> did not become ready within 30 s"
    fi
  done

  if [ "$ready" = " 1 2 3" ]; then
    b1="127.0.0.1:$(port_of 1 client)"
    b2="127.0.0.1:$(port_of 2 client)"
    b3="127.0.0.1:$(port_of 3 client)"
    # One cluster: every broker alive, exactly one controller, and each
    # broker known by the addresses its config gave it.
    status_ok=0
    for _ in $(seq 1 50); do
      if "$bin" cluster status --json --broker "$b2" >"$work/status.json" 2>"$work/status.err" \
        && "$py" - "$work/status.json" "$ports" <<'EOF'; then
import json, sys
s = json.load(open(sys.argv[1]))
ports = json.loads(sys.argv[2])
b = {str(x["id"]): x for x in s["brokers"]}
ok = (sorted(b) == ["1", "2", "3"] and all(x["alive"] for x in b.values())
      and sum(1 for x in b.values() if x["controller"]) == 1
      and str(s["controller_id"]) in b and b[str(s["controller_id"])]["controller"]
      and all(x["quorum_role"] == "voter" for x in b.values())
      and all(b[n]["address"] == "127.0.0.1:%d" % p["client"]
              and b[n]["cluster_address"] == "127.0.0.1:%d" % p["cluster"] for n, p in ports.items()))
sys.exit(0 if ok else 1)
EOF
        status_ok=1
        break
      fi
      sleep 0.2
    done
    if [ "$status_ok" = 1 ]; then
      pass "tidelog cluster status --json: one cluster $(jpy "$work/status.json" 'j["cluster_id"]'), brokers 1-3 alive voters at their configured addresses, one controller (node $(jpy "$work/status.json" 'j["controller_id"]'))"
    else
      cat "$work/status.json" "$work/status.err" 2>/dev/null
      fail "tidelog cluster status --json: expected brokers 1-3 alive, voters, one controller"
    fi

    # Partitions spread: a topic created through broker 1 lands on all three.
    if "$bin" topic create tf-spread --partitions 6 --broker "$b1" >/dev/null 2>"$work/create.err"; then
      spread=""
      for _ in $(seq 1 50); do
        "$bin" cluster status --json --broker "$b3" >"$work/status.json" 2>/dev/null \
          && spread=$(jpy "$work/status.json" '" ".join("%d:%d" % (b["id"], b["partitions"]) for b in j["brokers"])')
        "$bin" topic describe tf-spread --broker "$b3" >"$work/describe.txt" 2>/dev/null
        leaders=$(awk '$1 ~ /^[0-9]+$/ && NF > 2 { print $2 }' "$work/describe.txt" | sort -u | xargs)
        [ "$leaders" = "1 2 3" ] && [ "$(jpy "$work/status.json" 'len(j["brokers"]) == 3 and all(b["partitions"] > 0 for b in j["brokers"]) and sum(b["partitions"] for b in j["brokers"]) == 6' 2>/dev/null)" = true ] && break
        sleep 0.2
      done
      if [ "$leaders" = "1 2 3" ] && [ "$(jpy "$work/status.json" 'len(j["brokers"]) == 3 and all(b["partitions"] > 0 for b in j["brokers"]) and sum(b["partitions"] for b in j["brokers"]) == 6' 2>/dev/null)" = true ]; then
        pass "topic tf-spread (6 partitions) created through broker 1 is hosted by brokers 1, 2 and 3 (describe leaders: $leaders; partitions per broker $spread)"
      else
        cat "$work/describe.txt"
        fail "topic tf-spread (6 partitions) is not spread over the three brokers (describe leaders: '$leaders'; partitions per broker '$spread')"
      fi
    else
      cat "$work/create.err"
      fail "topic create tf-spread --partitions 6 through broker 1"
    fi

    # A client bootstrapped with one broker reaches the others through the
    # advertised addresses: produce through broker 2, consume through 3.
    got=""
    if printf 'a\nb\nc\nd\ne\nf\n' | "$bin" produce tf-spread --broker "$b2" >/dev/null 2>"$work/produce.err"; then
      got=$(timeout 30 "$bin" consume tf-spread --broker "$b3" --from-beginning -n 6 2>/dev/null | sort | xargs)
    fi
    if [ "$got" = "a b c d e f" ]; then
      pass "produce through broker 2 and consume through broker 3 round-trip 6 records over the cluster"
    else
      cat "$work/produce.err"
      fail "produce/consume over the cluster returned '$got'"
    fi

    # Each broker writes its cluster snapshot under its own prefix.
    prefixes=""
    for node in 1 2 3; do
      [ -f "$work/bucket/tidelog/broker-$node/cluster.json" ] && prefixes="$prefixes $node"
    done
    if [ "$prefixes" = " 1 2 3" ]; then
      pass "each broker writes its objects under its own prefix (tidelog/broker-N/cluster.json for N = 1, 2, 3)"
    else
      find "$work/bucket" -maxdepth 3 | head -n 20
      fail "cluster.json under the per-broker prefixes of brokers '$prefixes' only"
    fi
  else
    fail "the cluster did not form (ready:${ready:- none}); status, spread and round trip not checked"
  fi

  for node in $started; do kill -TERM "${bpids[$node]}" 2>/dev/null; done
  for node in $started; do
    stopped=0
    for _ in $(seq 1 150); do
      kill -0 "${bpids[$node]}" 2>/dev/null || { stopped=1; break; }
      sleep 0.1
    done
    if [ "$stopped" = 1 ]; then
      pass "broker $node: stops on SIGTERM within 15 s (the unit allows 120 s)"
    else
      tail -n 20 "$work/run/$node/broker.log"
      fail "broker $node: still running 15 s after SIGTERM"
    fi
  done
  # systemd unit and cloud-init user data, when the tools are installed.
  if command -v systemd-analyze >/dev/null 2>&1 && [ -f "$work/render/1/tidelog.service" ]; then
    # The unit names /usr/local/bin/tidelog, user tidelog and the data
    # mount, which exist only on a broker: verify with the binary path
    # swapped for the real one.
    mkdir -p "$work/unit"
    sed "s|/usr/local/bin/tidelog|$bin|" "$work/render/1/tidelog.service" >"$work/unit/tidelog.service"
    if out=$(systemd-analyze verify "$work/unit/tidelog.service" 2>&1); then
      pass "systemd-analyze verify tidelog.service${out:+ ($out)}"
    else
      echo "$out"
      fail "systemd-analyze verify tidelog.service"
    fi
  else
    info "systemd-analyze not installed: unit not verified"
  fi
  if command -v cloud-init >/dev/null 2>&1 && [ -f "$work/render/1/user-data.yaml" ]; then
    for node in 1 2 3; do
      if out=$(cloud-init schema --config-file "$work/render/$node/user-data.yaml" 2>&1); then
        pass "cloud-init schema: user data of broker $node is valid cloud-config"
      else
        echo "$out"
        fail "cloud-init schema: user data of broker $node"
      fi
    done
  else
    info "cloud-init not installed (Debian: apt-get install cloud-init): user data schema not checked"
  fi
  if command -v bash >/dev/null 2>&1 && [ -f "$work/render/1/tidelog-setup" ]; then
    if bash -n "$work/render/1/tidelog-setup"; then
      pass "the first-boot setup script parses (bash -n)"
    else
      fail "the first-boot setup script does not parse"
    fi
  fi
fi

# --- 3 (end). destroy leaves nothing ----------------------------------------
if [ "$applied" = 1 ] || [ -f "$example/terraform.tfstate" ]; then
  if (cd "$example" && terraform destroy -auto-approve -no-color) >"$work/destroy.log" 2>&1; then
    pass "terraform destroy examples/three-brokers against moto"
  else
    tail -n 40 "$work/destroy.log"
    fail "terraform destroy examples/three-brokers against moto"
  fi
  left=$(cd "$example" && terraform state list 2>/dev/null | grep -v '\.data\.' || true)
  after=$("$py" "$work/aws.py" "$endpoint" leftovers "$vpc")
  if [ -z "$left" ] && "$py" -c 'import json, sys; sys.exit(0 if not any(json.loads(sys.argv[1]).values()) else 1)' "$after"; then
    pass "destroy left nothing (state empty; no instance, security group, interface, bucket, role, policy or profile in the emulator)"
  else
    fail "destroy left: state '$left', emulator $after"
  fi
fi

finish
