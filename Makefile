# Two entry points for a fresh machine: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-install whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# Blender as users have it: bpy and nothing else (no torch), one venv per version the extension's manifest claims
# (4.2 LTS, 4.5 LTS, 5.0); the tests and the demo install the extension zip into each (train/demo.py names them too).
BLENDER_VERSIONS := 4.2.23 4.5.15 5.0.1
BLENDER_STAMPS := $(foreach v,$(BLENDER_VERSIONS),.venv-blender-$(v)/.installed)

# What the tests check glTF files with (the Khronos validator, three.js's GLTFLoader): npm packages pinned by
# tools/gltf/package-lock.json.
GLTF_TOOLS := tools/gltf/node_modules/.installed

.PHONY: demo test setup blender-venvs gltf-tools clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

blender-venvs: $(BLENDER_STAMPS)

.venv-blender-%/.installed:
	rm -rf .venv-blender-$*
	$(PYTHON) -m venv .venv-blender-$*
	.venv-blender-$*/bin/python -m pip install --quiet bpy==$*
	touch $@

demo: $(STAMP) .venv-blender-5.0.1/.installed
	$(PY) -m train demo --config quick

gltf-tools: $(GLTF_TOOLS)

$(GLTF_TOOLS): tools/gltf/package-lock.json
	npm ci --prefix tools/gltf --no-audit --no-fund --silent
	touch $@

test: $(STAMP) $(BLENDER_STAMPS) $(GLTF_TOOLS)
	$(PY) -m pytest -q -rf --durations=12

clean-outputs:
	rm -rf outputs
