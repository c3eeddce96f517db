# make install: .venv with fec installed editable (idempotent); make train: quickstart;
# make test: the whole suite. Set PYTHON to pick the interpreter that creates the venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install train test test-fast test-random test-gpu bench prepare-fec link clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash train.sh $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The whole suite with the modules, and the tests in each, in a shuffled order (the seed
# is printed; SEED=N repeats an order): a test that needs another to run first fails here.
test-random: $(STAMP)
	$(PY) -m pytest -q -p random_order --random-order-bucket=module $(if $(SEED),--random-order-seed=$(SEED),--random-order)

# the tests that need a CUDA GPU, then the training benchmark of ResNet18 at 224 px:
# float32 vs bfloat16 vs float16, contiguous vs channels_last
test-gpu: $(STAMP)
	$(PY) -m pytest -q -m cuda
	$(PY) tools/benchmark.py train --config-file config/fec/resnet18_conv3x3.yaml --repeat 2 \
		--compare SOLVER.AMP.ENABLED=False,True --compare SOLVER.AMP.DTYPE=bfloat16,float16 \
		--compare MODEL.CHANNELS_LAST=False,True MODEL.DEVICE cuda INPUT.SIZE 224 SOLVER.IMS_PER_BATCH 32 \
		DATASETS.TRAIN '("synthetic_fec_train",)' DATALOADER.NUM_WORKERS 8

bench: $(STAMP)
	$(PY) tools/benchmark.py read-fec-csv

# make prepare-fec CSV="TRAIN.csv TEST.csv" OUT=DIR [ARGS="--workers 64 --face-check mtcnn"]:
# download the FEC photos and cut the face crops; the same command again resumes.
prepare-fec: $(STAMP)
	@test -n "$(CSV)" -a -n "$(OUT)" || { echo 'usage: make prepare-fec CSV="TRAIN.csv TEST.csv" OUT=DIR' \
		'[ARGS="--workers 64"]'; exit 2; }
	$(PY) tools/prepare_fec.py $(foreach c,$(CSV),--csv $(c)) --out $(OUT) $(ARGS)

# make link FEC=/path/to/prepared/fec FER2013=/path/to/fer2013 FERPLUS=/path/to/ferplus
#           RAFDB=/path/to/rafdb AFFECTNET=/path/to/affectnet
# → datasets/fec, datasets/fer2013, ... which the catalog reads; any one alone, or several
# together. Every folder is checked before any link is made: FER2013's must hold one of
# its distributions (fer2013.csv; icml_face_data.csv; train.csv; train/ and test/ image
# folders), FERPLUS's fer2013new.csv, RAFDB's EmoLabel/list_patition_label.txt.
LINKS := $(if $(FEC),fec=$(FEC)) $(if $(FER2013),fer2013=$(FER2013)) $(if $(FERPLUS),ferplus=$(FERPLUS)) \
	$(if $(RAFDB),rafdb=$(RAFDB)) $(if $(AFFECTNET),affectnet=$(AFFECTNET))
link:
	@test -n "$(strip $(LINKS))" || { echo "usage: make link [FEC=/path/to/prepared/fec]" \
		"[FER2013=/folder/with/fer2013.csv] [FERPLUS=/folder/with/fer2013new.csv]" \
		"[RAFDB=/folder/with/EmoLabel] [AFFECTNET=/folder/with/training.csv]"; exit 2; }
	@for pair in $(LINKS); do name="$${pair%%=*}"; dir="$${pair#*=}"; \
		test -d "$$dir" || { echo "make link: $$dir is not a folder"; exit 2; }; \
		case "$$name" in \
		fer2013) test -f "$$dir/fer2013.csv" -o -f "$$dir/icml_face_data.csv" -o -f "$$dir/train.csv" \
			-o -d "$$dir/train" -o -d "$$dir/test" || { echo "make link: $$dir holds none of FER2013's" \
			"distributions; looked for fer2013.csv, icml_face_data.csv, train.csv (with test.csv)," \
			"train/<class>/*.jpg and test/<class>/*.jpg"; exit 2; } ;; \
		ferplus) test -f "$$dir/fer2013new.csv" || { echo "make link: $$dir has no fer2013new.csv" \
			"(FER+'s label file)"; exit 2; } ;; \
		rafdb) test -f "$$dir/EmoLabel/list_patition_label.txt" || { echo "make link: $$dir has no" \
			"EmoLabel/list_patition_label.txt (RAF-DB basic's label file, beside Image/aligned/)"; exit 2; } ;; \
		esac; done
	@mkdir -p datasets
	@for pair in $(LINKS); do name="$${pair%%=*}"; dir="$$(cd "$${pair#*=}" && pwd)"; \
		ln -sfn "$$dir" "datasets/$$name" && echo "datasets/$$name -> $$dir"; done

clean:
	rm -rf $(VENV) *.egg-info
