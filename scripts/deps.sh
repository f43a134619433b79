#!/usr/bin/env bash
# Installs what skiff's build and tests need on Debian 12, and only what is
# missing: the Debian packages of the real components (see the table "Real
# components and how they start" in the design) and the Rust wasm targets.
#
# Idempotent: a second run installs nothing. `apt-get update` runs at most
# once, and only when a package must be installed. Package installs never
# start services: a policy-rc.d that answers 101 is in place while apt runs,
# and any detached containerd / etcd / registry process that appeared during
# the install is stopped by its pid.
#
# Run as a user other than root, it installs nothing from Debian: it lists
# what is missing and the command that installs it, and exits 0.
set -euo pipefail

# A package counts as present when dpkg says it is installed, except
# kubernetes-client, which counts as present whenever a kubectl is on PATH:
# another package may own /usr/bin/kubectl, and installing kubernetes-client
# beside it fails with a dpkg file conflict.
readonly DEBIAN_PACKAGES=(
	protobuf-compiler
	containerd
	runc
	etcd-server
	docker-registry
	containernetworking-plugins
	kubernetes-client
	busybox-static
	python3-venv
	curl
)
readonly RUST_TARGETS=(wasm32-wasip2 wasm32-wasip1)
# Daemons whose postinst may try to start them.
readonly DAEMONS=(containerd etcd docker-registry)

log() { printf 'deps: %s\n' "$*"; }

# True when dpkg records the package as installed. (`dpkg -s` alone is not
# enough: it succeeds for packages dpkg merely knows, e.g. "not-installed" or
# "config-files".)
debian_package_installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

debian_package_present() {
	case "$1" in
	kubernetes-client) command -v kubectl >/dev/null 2>&1 || debian_package_installed kubernetes-client ;;
	*) debian_package_installed "$1" ;;
	esac
}

# Pids of the daemons above that run detached (parent pid 1), as a package's
# init script would leave them, one per line, sorted as `comm` wants. Those
# with another parent, e.g. an etcd that a test started, are not ours to
# stop. Reads /proc directly so that it needs no procps.
daemon_pids() {
	local status_file name parent daemon
	for status_file in /proc/[0-9]*/status; do
		name="$(sed -n 's/^Name:[[:space:]]*//p' "$status_file" 2>/dev/null)" || continue
		parent="$(sed -n 's/^PPid:[[:space:]]*//p' "$status_file" 2>/dev/null)" || continue
		[[ "$parent" == 1 ]] || continue
		for daemon in "${DAEMONS[@]}"; do
			if [[ "$name" == "$daemon" ]]; then
				status_file="${status_file#/proc/}"
				printf '%s\n' "${status_file%/status}"
			fi
		done
	done | LC_ALL=C sort
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

missing_packages=()
for package in "${DEBIAN_PACKAGES[@]}"; do
	debian_package_present "$package" || missing_packages+=("$package")
done

if ! command -v rustup >/dev/null 2>&1; then
	rustup_missing=1
	missing_targets=("${RUST_TARGETS[@]}")
else
	rustup_missing=0
	installed_targets="$(rustup target list --installed)"
	missing_targets=()
	for target in "${RUST_TARGETS[@]}"; do
		grep -qx "$target" <<<"$installed_targets" || missing_targets+=("$target")
	done
fi

if [[ ${#missing_packages[@]} -eq 0 && ${#missing_targets[@]} -eq 0 ]]; then
	log "all present, nothing to install"
	exit 0
fi

status=0

if [[ ${#missing_packages[@]} -gt 0 ]]; then
	if ! is_root; then
		log "missing Debian packages: ${missing_packages[*]}"
		log "install them as root with:"
		log "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing_packages[*]}"
	else
		log "installing Debian packages: ${missing_packages[*]}"
		# Keep package scripts from starting services while apt runs, and
		# afterwards (even when apt fails) stop any daemon the install
		# started anyway and put back whatever policy-rc.d was there before.
		policy=/usr/sbin/policy-rc.d
		policy_backup=""
		if [[ -e "$policy" ]]; then
			policy_backup="$(mktemp /usr/sbin/policy-rc.d.skiff-backup.XXXXXX)"
			cp -p "$policy" "$policy_backup"
		fi
		pids_before="$(daemon_pids)"
		after_install() {
			local started
			started="$(LC_ALL=C comm -13 <(printf '%s\n' "$pids_before") <(daemon_pids) | sed '/^$/d')"
			if [[ -n "$started" ]]; then
				log "stopping daemons started by the install: $(tr '\n' ' ' <<<"$started")"
				# shellcheck disable=SC2086 # one pid per word
				kill $started 2>/dev/null || true
			fi
			if [[ -n "$policy_backup" ]]; then
				mv -f "$policy_backup" "$policy"
			else
				rm -f "$policy"
			fi
		}
		trap after_install EXIT
		printf '#!/bin/sh\n# Written by skiff scripts/deps.sh while apt runs.\nexit 101\n' >"$policy"
		chmod 0755 "$policy"

		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing_packages[@]}"

		after_install
		trap - EXIT
		log "installed: ${missing_packages[*]}"
	fi
fi

if [[ ${#missing_targets[@]} -gt 0 ]]; then
	if [[ $rustup_missing -eq 1 ]]; then
		log "missing Rust targets: ${missing_targets[*]}, and rustup is not on PATH"
		log "install rustup (https://rustup.rs), then: rustup target add ${missing_targets[*]}"
		is_root && status=1
	else
		log "adding Rust targets: ${missing_targets[*]}"
		if ! rustup target add "${missing_targets[@]}"; then
			log "could not add Rust targets; run: rustup target add ${missing_targets[*]}"
			is_root && status=1
		fi
	fi
fi

exit "$status"
