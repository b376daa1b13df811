#!/bin/sh
# Re-fetch the front-end packages of the web map and of the OGC API pages from the npm registry
# (`npm pack`), check each tarball against the sha512 integrity the registry published (pinned below)
# and copy the files the server needs, with their licences, into gis_ioc/web/static/vendor/. The vendored
# files are committed: the server never fetches anything at run time (government network, no CDN).
#
#   tools/vendor-web.sh            fetch, verify, copy
#   tools/vendor-web.sh --check    only verify that the committed files equal the pinned packages
set -eu
cd "$(dirname "$0")/.."
DEST=gis_ioc/web/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# name version sha512-integrity (from `npm view NAME@VERSION dist.integrity`)
# d3 … leaflet-coverage: the CoverageJSON map of pygeoapi's EDR query page (collections/edr/query.html).
# Its URLs ask d3@5.16.0 and c3@0.7.20 exactly, covutils@0.6, covjson-reader@0.16 and leaflet-coverage@0.7
# (ranges: pinned to the newest of each, 0.6.1, 0.16.3 and 0.7.2); the minified builds of the same
# releases are served.
PACKAGES="
maplibre-gl 5.6.0 sha512-7TuHMozUC4rlIp08bSsxCixFn18P24otrlZU/7UGCO5RufFTJadFzauTrvBHr9FB67MbJ6nvFXEftGd0bUl4Iw==
leaflet 1.9.4 sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==
d3 5.16.0 sha512-4PL5hHaHwX4m7Zr1UapXW23apo6pexCgdetdJ5kTmADpG/7T9Gkxw0M0tf/pjoB63ezCCm0u5UaFYy2aMt0Mcw==
c3 0.7.20 sha512-QZg4q5M32x2TEgoiQPgc+G+rAuDErTjtG2AeLxS8s0ZLxHBoqsaRcraVvLBG8Zbmj8hOefz2DCWSlX3gaV/11g==
covutils 0.6.1 sha512-tvPwYwwXf29ZM+vVMmy+5VBYL0eTKqfXY7oUPXwgOWgX9Kjy2LMPkPvSTVIXmTm7E6qpp2FRWbLYIWLPaqlt9w==
covjson-reader 0.16.3 sha512-ExJOceRhs1cbMnuakAGKDpbTu52wcJtzb1pk+wY2cq6YZBkKmy5GdKeAU6bGnxGlOhJpukglJkMxnDL9FVgfeg==
leaflet-coverage 0.7.2 sha512-mCYIzEaUjXDPNfoCfySaAUk0raSuINr1FFRbL9+z6Nz2EZnfpu/4ywLuRc64drF+FPZ4K6/UHQAt5kpNVZigcQ==
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
  fix "$name"
}

# leaflet-coverage 0.7.2 (and 0.9.1, the newest) redraws a station's circle with `this._getColor(val)`,
# `val` declared nowhere: a ReferenceError as soon as the EDR page syncs its palette, and the circle's
# fill never takes the new colour. Fixed the way its _addMarker draws: fill the value's colour, stroke
# 70 % of it. The replacement must match exactly once (a changed package fails here).
LC_OLD='{key:"__updateMarker",value:function(){var t=this._getColor(val),e="string"==typeof t?g(t):t,r=e.r,n=e.g,o=e.b;this._marker.options.color="rgb("+r+","+n+","+o+")"}}'
LC_NEW='{key:"__updateMarker",value:function(){var t=this._getColor(this.getValue()),e="string"==typeof t?g(t):t,r=e.r,n=e.g,o=e.b;this._marker.setStyle({fillColor:"rgb("+r+","+n+","+o+")",color:"rgb("+Math.round(.7*r)+","+Math.round(.7*n)+","+Math.round(.7*o)+")"})}}'

fix() {  # name -> the unpacked package, patched where it must be
  case $1 in
    leaflet-coverage)
      OLD=$LC_OLD NEW=$LC_NEW perl -0pi -e '$n = s/\Q$ENV{OLD}\E/$ENV{NEW}/g; $n == 1 or die "leaflet-coverage: the __updateMarker fix matched $n times\n"' \
        "$WORK/$1/package/leaflet-coverage.min.js"
      echo "leaflet-coverage: __updateMarker fixed" >&2
      ;;
  esac
}

files() {  # name -> the files the server needs, from the package's root
  case $1 in
    maplibre-gl) echo "dist/maplibre-gl.js dist/maplibre-gl.css" ;;
    leaflet) echo "dist/leaflet.js dist/leaflet.css" ;;
    d3) echo "dist/d3.min.js" ;;
    c3) echo "c3.min.js c3.min.css" ;;
    covutils) echo "covutils.min.js" ;;
    covjson-reader) echo "covjson-reader.min.js" ;;
    leaflet-coverage) echo "leaflet-coverage.min.js leaflet-coverage.css" ;;
  esac
}

copy() {  # name version -> files
  name=$1 version=$2 src="$WORK/$name/package"
  out="$DEST/$name"
  mkdir -p "$out"
  names=""
  for file in $(files "$name"); do
    cp "$src/$file" "$out/"
    names="$names ${file##*/}"
  done
  cp "$src/LICENSE"* "$out/LICENSE.txt"
  case $name in
    leaflet-coverage) echo "$name $version (__updateMarker fixed: see tools/vendor-web.sh)" > "$out/VERSION" ;;
    *) echo "$name $version" > "$out/VERSION" ;;
  esac
  # shellcheck disable=SC2086 # one word per file
  (cd "$out" && sha256sum -- $names LICENSE.txt > SHA256SUMS)
}

echo "$PACKAGES" | while read -r name version integrity; do
  [ -n "$name" ] || continue
  fetch "$name" "$version" "$integrity"
  if [ "${1:-}" = "--check" ]; then
    (cd "$DEST/$name" && sha256sum -c --quiet SHA256SUMS)
    for file in $(files "$name"); do
      cmp "$WORK/$name/package/$file" "$DEST/$name/${file##*/}"
    done
    echo "$name: committed files intact, equal to the package's" >&2
  else
    copy "$name" "$version"
  fi
done
