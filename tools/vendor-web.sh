#!/bin/sh
# Re-fetch the web map's front-end packages from the npm registry (`npm pack`), check each tarball
# against the sha512 integrity the registry published (pinned below) and copy the files the server
# needs, with their licences, into gis_ioc/web/static/vendor/. The vendored files are committed:
# the server never fetches anything at run time (government network, no CDN).
#
#   tools/vendor-web.sh            fetch, verify, copy
#   tools/vendor-web.sh --check    only verify that the committed files equal the pinned packages
set -eu
cd "$(dirname "$0")/.."
DEST=gis_ioc/web/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# name version sha512-integrity (from `npm view NAME@VERSION dist.integrity`)
PACKAGES="
maplibre-gl 5.6.0 sha512-7TuHMozUC4rlIp08bSsxCixFn18P24otrlZU/7UGCO5RufFTJadFzauTrvBHr9FB67MbJ6nvFXEftGd0bUl4Iw==
leaflet 1.9.4 sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==
"

fetch() {  # name version integrity -> unpacked folder
  name=$1 version=$2 integrity=$3
  (cd "$WORK" && npm pack --silent "$name@$version" >/dev/null)
  tgz="$WORK/$name-$version.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | openssl base64 -A)"
  if [ "$got" != "$integrity" ]; then
    echo "integrity mismatch for $name@$version: $got (expected $integrity)" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name" && tar -xzf "$tgz" -C "$WORK/$name"
  echo "$name@$version verified ($integrity)" >&2
}

copy() {  # name version -> files
  name=$1 version=$2 src="$WORK/$name/package"
  out="$DEST/$name"
  mkdir -p "$out"
  case $name in
    maplibre-gl) cp "$src/dist/maplibre-gl.js" "$src/dist/maplibre-gl.css" "$out/" ;;
    leaflet) cp "$src/dist/leaflet.js" "$src/dist/leaflet.css" "$out/" ;;
  esac
  cp "$src/LICENSE"* "$out/LICENSE.txt"
  echo "$name $version" > "$out/VERSION"
  (cd "$out" && sha256sum -- *.js *.css LICENSE.txt > SHA256SUMS)
}

echo "$PACKAGES" | while read -r name version integrity; do
  [ -n "$name" ] || continue
  fetch "$name" "$version" "$integrity"
  if [ "${1:-}" = "--check" ]; then
    (cd "$DEST/$name" && sha256sum -c --quiet SHA256SUMS) && echo "$name: committed files intact" >&2
  else
    copy "$name" "$version"
  fi
done
