#!/usr/bin/env bash
# Generates COUNT CT instances (512x512, 16 bit, 0.5 MB of noise each) of one new study with dcmtk's dump2dcm
# from image.dump.in beside this script, and prints the paths of the files.
# usage: make-sample.sh OUT_DIR COUNT PATIENT_ID [STUDY_DESCRIPTION]
set -euo pipefail
out="$1" count="$2" patient="$3" description="${4:-Demo CT}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$out"

uid() { /usr/bin/python3 -c 'import uuid; print("2.25.%d" % uuid.uuid4().int)'; }
study="$(uid)" series="$(uid)"
for ((i = 1; i <= count; i++)); do
  sop="$(uid)"
  stem="$out/CT.$sop"
  head -c $((512 * 512 * 2)) /dev/urandom > "$stem.raw"
  sed -e "s|@SOP_CLASS_UID@|1.2.840.10008.5.1.4.1.1.2|" \
      -e "s|@SOP_INSTANCE_UID@|$sop|" \
      -e "s|@STUDY_INSTANCE_UID@|$study|" \
      -e "s|@SERIES_INSTANCE_UID@|$series|" \
      -e "s|@STUDY_DATE@|$(date -u +%Y%m%d)|" \
      -e "s|@ACCESSION@|${patient//-/}$i|" \
      -e "s|@MODALITY@|CT|" \
      -e "s|@STUDY_DESCRIPTION@|$description|" \
      -e "s|@PATIENT_NAME@|Demo^${patient//-/}|" \
      -e "s|@PATIENT_ID@|$patient|" \
      -e "s|@INSTANCE_NUMBER@|$i|" \
      -e "s|@ROWS@|512|" \
      -e "s|@COLUMNS@|512|" \
      -e "s|@PIXEL_FILE@|$stem.raw|" \
      "$here/image.dump.in" > "$stem.dump"
  dump2dcm -q "$stem.dump" "$stem.dcm"
  rm -f "$stem.raw" "$stem.dump"
  echo "$stem.dcm"
done
