#!/usr/bin/env bash
# The held-out MIDI songs that `livegen-train eval-continuations` is judged on (issue 18):
# 86 files from 13 Debian packages, none of them in the music21 corpus the presets train on.
#
#   bash scripts/heldout_midi.sh /var/tmp/livegen-data/heldout-songs-src
#   livegen-train eval-continuations /var/tmp/livegen-data/heldout-songs-src/songs
#
# The packages are downloaded (apt-get download, about 80 MB) and unpacked into OUT/root, not
# installed. OUT/songs gets one link per file of benchmarks/heldout_songs.txt, named after its
# folder so that names stay apart. Which files and why (duplicates, music21 overlaps, guitar-game
# charts and MMA's generated backing tracks left out): BENCHMARKS.md, issue 18 (stop 27).
set -euo pipefail

out=${1:?usage: scripts/heldout_midi.sh OUT}
list="$(cd "$(dirname "$0")/.." && pwd)/benchmarks/heldout_songs.txt"
packages=(simutrans-data planetblupi-music-midi pianobooster faust-common playmidi kobodeluxe-data
  crimson liquidwar-data nyquist pangzero pd-mrpeach pinball-table-hurd-data wims-help)

mkdir -p "$out/debs" "$out/root" "$out/songs"
cd "$out/debs"
for package in "${packages[@]}"; do
  ls "${package}"_*.deb > /dev/null 2>&1 || apt-get download "$package"
done
for deb in *.deb; do
  dpkg-deb -x "$deb" "$out/root"
done
# Debian compresses the examples under /usr/share/doc: the tools read plain .mid files.
find "$out/root" -name '*.mid.gz' | while read -r packed; do
  [ -e "${packed%.gz}" ] || gunzip -k "$packed"
done

missing=0
while read -r path; do
  if [ ! -f "$out/root/$path" ]; then
    echo "missing: $path (a newer package version may have moved or dropped it)" >&2
    missing=$((missing + 1))
    continue
  fi
  folder=$(echo "$path" | cut -d/ -f1-4 | tr / _)
  ln -sf "$out/root/$path" "$out/songs/${folder#usr_share_}__$(basename "$path")"
done < "$list"
echo "$(ls "$out/songs" | wc -l) songs in $out/songs ($missing missing)"
