# Two commands: `make demo` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/sfllava-mobile
STAMP  := $(VENV)/.installed-stamp
# kotlinc + ktlint (npm) and JUnit + Gson (Debian) for the Android app's checks; see tools/android_toolchain.sh
TOOLCHAIN := .toolchain
DEMO   := demo_out

.PHONY: demo test test-slow clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	# torch first and pinned, so no resolver step can reach for a CUDA build.
	$(PY) -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[all,dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(CLI) init-tiny $(DEMO)/tiny-ckpt
	$(CLI) synth-clip $(DEMO)/clip.mp4 --frames 48 --size 96x128
	$(CLI) generate --checkpoint $(DEMO)/tiny-ckpt --video $(DEMO)/clip.mp4 --question "What moves in the video?"
	$(CLI) -q export --checkpoint $(DEMO)/tiny-ckpt --backend executorch --quant 8da4w --out $(DEMO)/bundle-8da4w
	$(CLI) -q verify $(DEMO)/bundle-8da4w --cases 2 --steps 8 > $(DEMO)/verify.txt
	$(CLI) -q bench $(DEMO)/bundle-8da4w --video $(DEMO)/clip.mp4 --steps 32 --plot $(DEMO)/bench.png --json > $(DEMO)/bench.json
	$(CLI) -q chat --bundle $(DEMO)/bundle-8da4w --video $(DEMO)/clip.mp4 --question "What moves?" --question "What colour is it?" --json > $(DEMO)/chat.json
	$(CLI) -q export --checkpoint $(DEMO)/tiny-ckpt --backend coreml --quant int4 --out $(DEMO)/bundle-coreml-int4
	$(CLI) -q verify $(DEMO)/bundle-coreml-int4 --cases 2 --steps 8 > $(DEMO)/verify-coreml.txt
	$(CLI) plan --preset sf-llava-1.5-1b --frames 128
	$(PY) -m sfllava_mobile.demo_summary $(DEMO)

test: $(STAMP)
	bash tools/android_toolchain.sh $(TOOLCHAIN)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) $(DEMO) $(TOOLCHAIN)
