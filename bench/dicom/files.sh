# Sourced by the benchmark scripts (bench/dicom/run.sh, bench/soak.sh): DICOM Part 10 files of random pixels from
# tests/data/dicom/image.dump.in, written by dcmtk's dump2dcm. Needs $repo (the repository root).

# make_dicom_files DIR KIND COUNT ROWS COLS SOP_CLASS LABEL -> DIR/KIND1.dcm .. DIR/KINDCOUNT.dcm, one study and series,
# 16-bit pixels (ROWS x COLS x 2 bytes each); LABEL names the patient (LABEL^KIND) and the study description.
make_dicom_files() {
  local dir="$1" kind="$2" count="$3" rows="$4" cols="$5" sopclass="$6" label="$7"
  mkdir -p "$dir"
  local study series upper; study="2.25.$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')"; series="$study.1"; upper="${label^^}"
  for ((i = 1; i <= count; i++)); do
    local stem="$dir/$kind$i"
    head -c $((rows * cols * 2)) /dev/urandom >"$stem.raw"
    sed -e "s|@SOP_CLASS_UID@|$sopclass|" -e "s|@SOP_INSTANCE_UID@|$series.$i|" -e "s|@STUDY_INSTANCE_UID@|$study|" \
        -e "s|@SERIES_INSTANCE_UID@|$series|" -e "s|@STUDY_DATE@|$(date -u +%Y%m%d)|" -e "s|@ACCESSION@|${upper:0:1}$i|" \
        -e "s|@MODALITY@|$kind|" -e "s|@STUDY_DESCRIPTION@|$label $kind|" -e "s|@PATIENT_NAME@|$label^$kind|" \
        -e "s|@PATIENT_ID@|$upper|" -e "s|@INSTANCE_NUMBER@|$i|" -e "s|@ROWS@|$rows|" -e "s|@COLUMNS@|$cols|" \
        -e "s|@PIXEL_FILE@|$stem.raw|" "$repo/tests/data/dicom/image.dump.in" >"$stem.dump"
    dump2dcm -q "$stem.dump" "$stem.dcm"
    rm -f "$stem.raw" "$stem.dump"
  done
}
