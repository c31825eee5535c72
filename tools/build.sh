#!/usr/bin/env bash
# Builds the real parts the tests and `make cluster` run, from Go modules, into a cache outside
# the repository (nothing built is ever committed):
#
#   k8s                etcd's peers: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#   etcd               the store behind kube-apiserver
#   kwok               simulated nodes (the kubelet's role only: nodes Ready, bound pods Running/Ready)
#   pulumi             the Pulumi CLI (the engine)
#   pulumi-kubernetes  the Kubernetes resource provider the engine drives
#   cnpg               CloudNativePG's CRDs, generated from its Go API types with controller-gen
#
# Each part is built from the small consumer module under tools/<part>/ (go.mod and go.sum pin
# every version), once: a stamp records what it was built from, and a second run with nothing
# changed does nothing. Progress is printed as packages compiled out of the total.
#
#   tools/build.sh                 build what is missing, in the foreground
#   tools/build.sh --background    the same, detached; follow it in $CACHE/build.log
#   tools/build.sh --check         exit 0 when everything is built, 1 (and what is missing) if not
#   tools/build.sh k8s etcd        only those parts
#
# $PEAKSCALE_CACHE (default ~/.cache/peakscale) holds the binaries, $PEAKSCALE_CACHE/bin links the
# current ones (that is the PATH the README gives). A cold build of everything on 2 cores takes
# about half an hour and 12 GB of Go build cache; a warm one a second.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/tools"
CACHE="${PEAKSCALE_CACHE:-$HOME/.cache/peakscale}"
BIN="$CACHE/bin"
ALL=(k8s etcd kwok pulumi pulumi-kubernetes cnpg)

export GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN=local CGO_ENABLED=0
# the project's Python (it has pyyaml) for the small file edits below; `make binaries` makes it first
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || PY=python3

die() { echo "tools/build.sh: $*" >&2; exit 1; }

version_of() { # version_of DIR MODULE: the version the consumer module pins
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

stamp_of() { # what a part is built from: its consumer module, its recipe below, the Go version
  local part=$1
  {
    declare -f "build_${part//-/_}" progress_build
    go version
    cat "$TOOLS/$part"/go.mod "$TOOLS/$part"/go.sum
    cat "$TOOLS/$part"/*.go "$TOOLS/$part"/VERSION 2>/dev/null || true
  } | sha256sum | cut -c1-16
}

out_dir() { # out_dir PART: where a part's files go, named by the version it pins
  local part=$1 v
  case $part in
    k8s) v=$(version_of "$TOOLS/k8s" k8s.io/kubernetes) ;;
    etcd) v=$(version_of "$TOOLS/etcd" go.etcd.io/etcd/server/v3) ;;
    kwok) v=$(version_of "$TOOLS/kwok" sigs.k8s.io/kwok) ;;
    pulumi) v=$(version_of "$TOOLS/pulumi" github.com/pulumi/pulumi/pkg/v3) ;;
    pulumi-kubernetes) v=v$(provider_version) ;;
    cnpg) v=$(version_of "$TOOLS/cnpg" github.com/cloudnative-pg/cloudnative-pg) ;;
    *) die "unknown part '$part' (known: ${ALL[*]})" ;;
  esac
  echo "$CACHE/$part-$v"
}

provider_version() {
  # the provider module is served only at a pseudo-version; tools/pulumi-kubernetes/VERSION
  # names the release tag it equals (the Python SDK in pyproject.toml is pinned to the same)
  tr -d ' \n' <"$TOOLS/pulumi-kubernetes/VERSION"
}

built() { # built PART: its stamp matches
  local dir
  dir=$(out_dir "$1")
  [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$(stamp_of "$1")" ]]
}

progress_build() { # progress_build LABEL MODDIR OUTDIR LDFLAGS PKG...: go build with a progress line
  local label=$1 moddir=$2 outdir=$3 ldflags=$4
  shift 4
  local total done=0 start=$SECONDS line
  total=$(cd "$moddir" && go list -deps "$@" | wc -l)
  echo "[$label] compiling up to $total packages (cached ones are skipped)"
  (cd "$moddir" && go build -v -trimpath -ldflags "$ldflags" -o "$outdir/" "$@" 2>&1) | while IFS= read -r line; do
    if [[ "$line" == *" "* || "$line" == *":"* ]]; then echo "[$label] $line"; continue; fi
    done=$((done + 1))
    if ((done % 100 == 0)); then
      printf '[%s] %d/%d packages, %dm%02ds\n' "$label" "$done" "$total" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
    fi
  done
  local rc=${PIPESTATUS[0]}
  ((rc == 0)) || die "$label: go build failed (see the lines above)"
}

build_k8s() {
  local out=$1 v ld
  v=$(version_of "$TOOLS/k8s" k8s.io/kubernetes)
  local major minor
  major=$(echo "${v#v}" | cut -d. -f1)
  minor=$(echo "${v#v}" | cut -d. -f2)
  # without these, /version and `kubectl version` say v0.0.0
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    ld+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  progress_build k8s "$TOOLS/k8s" "$out" "$ld" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  progress_build etcd "$TOOLS/etcd" "$1" "-s -w" .
}

build_kwok() {
  local out=$1 v src
  v=$(version_of "$TOOLS/kwok" sigs.k8s.io/kwok)
  progress_build kwok "$TOOLS/kwok" "$out" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" sigs.k8s.io/kwok/cmd/kwok
  # the stages kwokctl gives a cluster by default: nodes initialize and keep a heartbeat Lease,
  # pods go Running and Ready once bound, and go when deleted. One change: a pod annotated
  # peakscale.test/hold-ready stays bound but not ready until a test removes the annotation
  # (its readiness probe has not passed yet)
  (cd "$TOOLS/kwok" && go mod download sigs.k8s.io/kwok)
  src=$(cd "$TOOLS/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  "$PY" - "$src" "$out/stages.yaml" <<'EOF'
import sys, yaml
src, out = sys.argv[1:]
files = ["node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
         "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"]
stages = [yaml.safe_load(open(f"{src}/{f}")) for f in files]
for stage in stages:
    if stage["metadata"]["name"] == "pod-ready":
        stage["spec"]["selector"]["matchExpressions"].append(
            {"key": '.metadata.annotations["peakscale.test/hold-ready"]', "operator": "DoesNotExist"})
yaml.safe_dump_all(stages, open(out, "w"), sort_keys=False)
EOF
}

build_pulumi() {
  local out=$1 v
  v=$(version_of "$TOOLS/pulumi" github.com/pulumi/pulumi/pkg/v3)
  progress_build pulumi "$TOOLS/pulumi" "$out" "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

build_pulumi_kubernetes() {
  local out=$1 v work src
  v=$(provider_version)
  # the upstream main embeds schema files that `go generate` writes; build a copy of the
  # consumer module in a scratch directory beside the output, with those files made there
  work="$CACHE/src/pulumi-kubernetes"
  rm -rf "$work" && mkdir -p "$work"
  cp "$TOOLS/pulumi-kubernetes"/go.mod "$TOOLS/pulumi-kubernetes"/go.sum "$TOOLS/pulumi-kubernetes"/main.go "$work/"
  (cd "$work" && go mod download github.com/pulumi/pulumi-kubernetes/provider/v4)
  src=$(cd "$work" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
  "$PY" - "$src" "$work" "$v" <<'EOF'
import json, sys
src, work, version = sys.argv[1:]
schema = json.load(open(f"{src}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{work}/schema-embed.json", "w"), separators=(",", ":"))
json.dump(json.load(open(f"{src}/terraform-mapping.json")), open(f"{work}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
EOF
  progress_build pulumi-kubernetes "$work" "$out" "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$v" .
  mv "$out/pulumi-kubernetes" "$out/pulumi-resource-kubernetes"
}

build_cnpg() {
  local out=$1
  # controller-gen over CloudNativePG's API types: the CRDs its operator installs
  progress_build cnpg "$TOOLS/cnpg" "$out" "-s -w" sigs.k8s.io/controller-tools/cmd/controller-gen
  rm -rf "$out/crds" && mkdir -p "$out/crds"
  (cd "$TOOLS/cnpg" && go mod download all)
  (cd "$TOOLS/cnpg" && "$out/controller-gen" crd:crdVersions=v1 paths=github.com/cloudnative-pg/cloudnative-pg/api/v1 \
    output:crd:artifacts:config="$out/crds")
  ls "$out/crds"/*.yaml >/dev/null
}

link() { # link PART DIR: point $BIN at a part's files
  mkdir -p "$BIN"
  local f
  for f in "$2"/*; do
    [[ -x "$f" && -f "$f" ]] && ln -sfn "$f" "$BIN/$(basename "$f")"
  done
  ln -sfn "$2" "$BIN/.$1"
}

build_part() {
  local part=$1 dir start=$SECONDS
  dir=$(out_dir "$part")
  if built "$part"; then
    link "$part" "$dir"
    return 0
  fi
  echo "[$part] building into $dir"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  "build_${part//-/_}" "$dir.tmp"
  stamp_of "$part" >"$dir.tmp/.stamp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  link "$part" "$dir"
  printf '[%s] built in %dm%02ds (%s)\n' "$part" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$(du -sh "$dir" | cut -f1)"
}

main() {
  local mode=build parts=()
  for arg in "$@"; do
    case $arg in
      --background) mode=background ;;
      --check) mode=check ;;
      -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
      -*) die "unknown option $arg (see --help)" ;;
      *) parts+=("$arg") ;;
    esac
  done
  ((${#parts[@]})) || parts=("${ALL[@]}")
  command -v go >/dev/null || die "go is not on PATH: the binaries are built from Go modules (Go 1.26)"
  mkdir -p "$CACHE"
  case $mode in
    check)
      local missing=()
      for p in "${parts[@]}"; do built "$p" || missing+=("$p"); done
      ((${#missing[@]} == 0)) && exit 0
      echo "not built: ${missing[*]} (run tools/build.sh)"
      exit 1
      ;;
    background)
      nohup "$0" "${parts[@]}" >"$CACHE/build.log" 2>&1 &
      echo "building in the background (pid $!): tail -f $CACHE/build.log"
      exit 0
      ;;
  esac
  # one build at a time: a second caller waits for the first, then finds the stamps current
  exec 9>"$CACHE/build.lock"
  if ! flock -n 9; then
    echo "another build is running (tail -f $CACHE/build.log); waiting for it"
    flock 9
  fi
  local start=$SECONDS
  for p in "${parts[@]}"; do build_part "$p"; done
  printf 'binaries ready in %s (%dm%02ds)\n' "$BIN" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
}

main "$@"
