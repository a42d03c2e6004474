# Two commands a newcomer needs: `make demo` (the main job on the embedded default) and `make test`.
# Each installs what it needs first, idempotently, into .venv at the repository root.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# lerobot pins torch<2.11, so it lives in its own venv, used only by the interop test and the read benchmark
# (why it is built the way it is: tests/lerobot-env.txt).
LEROBOT_VENV ?= .venv-lerobot
LEROBOT_STAMP := $(LEROBOT_VENV)/.installed
export LEROBOT_PYTHON := $(abspath $(LEROBOT_VENV))/bin/python
# FFmpeg 5 libraries: torchcodec, lerobot's video decoder, loads them in the interop environment.
APT_PACKAGES := libegl1 libgl1-mesa-dri libusb-1.0-0 fonts-noto-color-emoji \
  libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4
# Tests only: the recording console's end-to-end test drives a real headless Chromium (Selenium + chromedriver).
TEST_APT_PACKAGES := chromium chromium-driver

# Install the Debian packages named in $(1) that are missing (idempotent: nothing runs when all are there).
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
endef

# DDS never leaves this host; MuJoCo renders offscreen on the CPU.
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export ROS_DOMAIN_ID ?= 61
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup lerobot-env browser compile demo test bench colcon clean
setup: $(STAMP)
lerobot-env: $(LEROBOT_STAMP)

$(STAMP): pyproject.toml Makefile
	$(call apt_install,$(APT_PACKAGES))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU build; a GPU user may pre-install any torch>=2.4 instead.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	touch $(STAMP)

$(LEROBOT_STAMP): tests/lerobot-env.txt | $(STAMP)
	test -x $(LEROBOT_VENV)/bin/python || python3 -m venv $(LEROBOT_VENV)
	$(LEROBOT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LEROBOT_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(LEROBOT_VENV)/bin/python -m pip install -q --no-deps lerobot==0.4.4
	$(LEROBOT_VENV)/bin/python -m pip install -q -r tests/lerobot-env.txt
	$(LEROBOT_VENV)/bin/python -c "from lerobot.datasets.lerobot_dataset import LeRobotDataset; import torchcodec"
	touch $(LEROBOT_STAMP)

# dpkg answers in milliseconds when everything is there, so this runs on every `make test`.
browser:
	$(call apt_install,$(TEST_APT_PACKAGES))

# Byte-compile the project up front: a first import that compiles inside a ROS callback can stall
# the lock-stepped twin long enough to cost the first recorded episode its alignment.
compile: setup
	$(PY) -m compileall -q vla_robot sim training tests bench > /dev/null

demo: setup compile
	$(VENV)/bin/vla-robot demo --out out/demo

test: setup lerobot-env browser compile
	# ROS/twin closed-loop tests run on the wall clock; a starved CPU may fail one attempt: rerun it (twice at most).
	# Every failed attempt (a rerun that passed too) is in out/test-artifacts/failed_attempts.log, listed here.
	$(PY) -m pytest -q -p no:cacheprovider --reruns 2 tests; status=$$?; \
	if [ -s out/test-artifacts/failed_attempts.log ]; then \
		echo "failed attempts (rerun or failed; tracebacks and node logs in out/test-artifacts/failed_attempts.log):"; \
		grep '^=== ' out/test-artifacts/failed_attempts.log; fi; exit $$status

bench: setup lerobot-env
	for b in bench/*.py; do $(PY) $$b || exit 1; done

colcon: setup
	cd ros2_ws && ../$(VENV)/bin/colcon build --symlink-install

clean:
	rm -rf out report runs ros2_ws/build ros2_ws/install ros2_ws/log
