# ======================================================================================
# Included by the Makefile. The paper: `make table1 table2 table3 table5 fig4 fig5 fig6`, or `make paper` for all.
# Each writes $(RESULTS)/<target>.md and .json (figures also a .png) from the stage
# artifacts under $(PB)/<dataset>/, which are ordinary file targets: make re-runs only
# what changed. Stage files per dataset (all made by mgr subcommands):
#   dataset.jsonl, {text,image,fused,textlm}.emb.safetensors, <name>.ids.safetensors,
#   <row>.tok.safetensors, <row>.run/, <row>.align/, <row>.eval/ (metrics + predictions)
# ======================================================================================
PROFILE ?= small
RESULTS ?= results
PB      ?= build/paper/$(PROFILE)
MM_SETS   ?= hm movielens   # text + images: every table and figure
ID_SETS   ?= instruments    # real per-modality IDs enter at tokenize: Tables 3, 5, Figure 5
TEXT_SETS ?= beauty         # text only: the text rows of Table 5 and SASRec
FIG6_SETS ?= $(firstword $(MM_SETS))  # the sweeps, on one set (as the paper, on Sports)
CLIP_MODEL      ?= ViT-B-32
CLIP_PRETRAINED ?=
TEXT_LM         ?= standin:minilm
TEXT_LM_POOLING ?= cls
PY ?= $(BIN)/python
INSTALLED ?= $(VENV)/.installed  # empty: use MGR and PY as they are (the tests)

# The budget of every command is the profile's TOML file (configs/<profile>.toml, read
# through --config; flags given here override it). What stays here shapes the graph:
# the main IDs' size (Figure 6 compares the sweeps with it: the file's [quantize]
# levels and codebook-size), the sweeps, the encoders, per-dataset history lengths.
CONFIG := configs/$(PROFILE).toml
ifeq ($(wildcard $(CONFIG)),)
  $(error PROFILE must be tiny, small, cpu or paper (configs/<profile>.toml), not '$(PROFILE)')
endif
CFG := --config $(CONFIG)
ifeq ($(PROFILE),tiny)      # smoke runs on the demo catalogue (tests/cli/test_paper.py)
  MAIN_LEVELS := 2
  MAIN_SIZE   := 8
  SWEEP_LEVELS := 3
  SWEEP_SIZES  := 4
  ENC_DEFAULT := --clip-model mgr-tiny-clip --clip-pretrained none
else
  MAIN_LEVELS := 3
  MAIN_SIZE   := 256
  SWEEP_LEVELS := 2 4 $(if $(filter paper,$(PROFILE)),5)
  SWEEP_SIZES  := 64 128 $(if $(filter paper,$(PROFILE)),512)
  ENC_DEFAULT := --text-model standin:minilm --image-model standin:efficientnet-lite0
endif
ifneq ($(filter small cpu,$(PROFILE)),)
  # every MovieLens user rated >= 20 films, so its late-fusion inputs are ~160 tokens at
  # the default 20 items of history: 10 (tokenize and SASRec alike) keeps MovieLens well
  # under an hour on 2 cores
  HISTORY_movielens := 10
endif
BUDGET := $(CONFIG): $(strip $(shell grep -v '^\#' $(CONFIG) | tr -s '\n' ' '))$(if $(HISTORY_movielens),; movielens history $(HISTORY_movielens) items)

ifneq ($(CLIP_PRETRAINED),)  # CLIP's two towers share a space: early fusion averages them
  ENC    := --clip-model $(CLIP_MODEL) --clip-pretrained $(CLIP_PRETRAINED)
  FUSION := mean
else                         # the stand-ins (384-d text, 1280-d image) do not: concatenate
  ENC    := $(ENC_DEFAULT)
  FUSION := $(if $(filter tiny,$(PROFILE)),mean,concat)
endif

# Raw data per dataset: prepare format, folder, category field for Table 1.
FMT_hm := hm
RAW_hm := $(DATA)/hm
FIELD_hm := product_type_name
FMT_movielens := movielens
RAW_movielens := $(DATA)/movielens-100k
FIELD_movielens := genre
FMT_instruments := lcrec
RAW_instruments := $(DATA)/amazon2018-instruments
TEXT_INDEX_instruments := $(RAW_instruments)/Instruments.index_lemb.json
IMAGE_INDEX_instruments := $(RAW_instruments)/Instruments.index_vitemb.json
FMT_beauty := amazon-p5
RAW_beauty := $(DATA)/amazon2014/Beauty
FMT_demo := generic            # the smoke-test catalogue, generated
RAW_demo := $(PB)/demo-raw
FIELD_demo := category
FMT_demotext := generic
RAW_demotext := $(PB)/demo-raw
FMT_demoids := generic
RAW_demoids := $(PB)/demo-raw
TEXT_INDEX_demoids := $(PB)/demo/text.index.json
IMAGE_INDEX_demoids := $(PB)/demo/image.index.json

# One line naming the missing path, before anything runs.
need = $(if $(wildcard $(1)),,$(error $(1) not found: the paper targets read ../shared/data; set DATA=/path/to/data))

SWEEPS := $(addprefix L,$(SWEEP_LEVELS)) $(addprefix K,$(SWEEP_SIZES))
MM_EVALS   := popular sasrec tiger-textlm tiger-text tiger-image letter hc mgr-ef mgr-lf mgr-lfpp+align
ID_EVALS   := popular sasrec tiger-text tiger-image mgr-lf mgr-lfpp+align
TEXT_EVALS := popular sasrec tiger-textlm tiger-text letter hc
FIG5_EVALS := mgr-lf mgr-lfpp mgr-lf+align mgr-lfpp+align
SUBSETS3   := text image collab text+image text+collab image+collab  # partial decoding, 3 modalities
FIG6_EVALS := mgr-lfpp+align $(foreach t,$(SWEEPS),mgr-lfpp.$(t)+align)
evals = $(foreach d,$(1),$(foreach e,$(2),$(PB)/$(d)/$(e).eval/metrics.jsonl))
REPORT = $(PY) -m mgr_cli.reproduce $(basename $(notdir $@)) --build $(PB) --out $(RESULTS) --profile $(PROFILE) --budget "$(BUDGET)"

# ---- the results
paper: table1 table2 table3 table5 fig4 fig5 fig6 ## Every table and figure, then REPRODUCTION.md.
	$(PY) -m mgr_cli.reproduce reproduction --out $(RESULTS) --reproduction $(if $(filter results,$(RESULTS)),REPRODUCTION.md,$(RESULTS)/REPRODUCTION.md)
table1: $(RESULTS)/table1.md ## AMI of first-level IDs: Img vs Txt, Img vs MM, Txt vs MM.
table2: $(RESULTS)/table2.md ## Identical predictions across image/text/fused-input models.
table3: $(RESULTS)/table3.md ## MGR-LF Hits@5 decoding text only, image only, the full ID.
table5: $(RESULTS)/table5.md ## Every method: MRR / NDCG@5 / Hits@5.
fig4: $(RESULTS)/fig4.md     ## Contact sheets: first text ID vs first image ID.
fig5: $(RESULTS)/fig5.md     ## LF++ ablation: neither, tokens only, alignment only, both.
fig6: $(RESULTS)/fig6.md     ## MGR-LF++ vs ID length and codebook size.
table5-three: $(RESULTS)/table5-three.md  ## Beyond the paper: + collab IDs (not in `paper`).
table3-three: $(RESULTS)/table3-three.md  ## Partial decoding of every subset of 3 modalities.

$(RESULTS)/table1.md: $(foreach d,$(MM_SETS),$(PB)/$(d)/table1.json)
	$(REPORT) --sets "$(MM_SETS)"
$(RESULTS)/fig4.md: $(foreach d,$(MM_SETS),$(PB)/$(d)/figure4.png)
	$(REPORT) --sets "$(MM_SETS)"
$(RESULTS)/table2.md: $(call evals,$(MM_SETS),tiger-image tiger-text mgr-ef)
	$(REPORT) --sets "$(MM_SETS)"
$(RESULTS)/table3.md: $(call evals,$(MM_SETS) $(ID_SETS),mgr-lf) \
		$(foreach d,$(MM_SETS) $(ID_SETS),$(PB)/$(d)/mgr-lf.eval-text/metrics.jsonl $(PB)/$(d)/mgr-lf.eval-image/metrics.jsonl)
	$(REPORT) --sets "$(MM_SETS) $(ID_SETS)"
$(RESULTS)/table5.md: $(call evals,$(MM_SETS),$(MM_EVALS)) $(call evals,$(ID_SETS),$(ID_EVALS)) \
		$(call evals,$(TEXT_SETS),$(TEXT_EVALS))
	$(REPORT) --sets "$(MM_SETS) $(ID_SETS) $(TEXT_SETS)"
THREE_SETS ?= $(MM_SETS) $(ID_SETS)
THREE_ROWS := mgr-lf3 mgr-lfpp3+align
$(RESULTS)/table5-three.md: $(call evals,$(THREE_SETS),sasrec mgr-lf mgr-lfpp+align $(THREE_ROWS))
	$(REPORT) --sets "$(THREE_SETS)"
$(RESULTS)/table3-three.md: $(call evals,$(THREE_SETS),$(THREE_ROWS)) \
		$(foreach d,$(THREE_SETS),$(foreach r,$(THREE_ROWS),$(foreach s,$(SUBSETS3),$(PB)/$(d)/$(r).eval-$(s)/metrics.jsonl)))
	$(REPORT) --sets "$(THREE_SETS)"
$(RESULTS)/fig5.md: $(call evals,$(MM_SETS) $(ID_SETS),$(FIG5_EVALS))
	$(REPORT) --sets "$(MM_SETS) $(ID_SETS)"
$(RESULTS)/fig6.md: $(call evals,$(FIG6_SETS),$(FIG6_EVALS))
	$(REPORT) --sets "$(FIG6_SETS)" --levels "$(SWEEP_LEVELS)" --sizes "$(SWEEP_SIZES)" \
		--main-levels $(MAIN_LEVELS) --main-size $(MAIN_SIZE)

# ---- stage 1: data, embeddings, semantic IDs
$(PB)/%/dataset.jsonl: | $(INSTALLED)
	$(call need,$(RAW_$*))
	$(MGR) prepare $(FMT_$*) $(RAW_$*) -o $@ --name $* --force
$(PB)/demo-raw/items.csv: | $(INSTALLED)
	$(MGR) demo-data $(PB)/demo-raw --items 100 --users 60 --image-size 16 --force
$(PB)/demo/dataset.jsonl $(PB)/demotext/dataset.jsonl $(PB)/demoids/dataset.jsonl: $(PB)/demo-raw/items.csv

$(PB)/%/text.emb.safetensors: $(PB)/%/dataset.jsonl
	$(MGR) embed $< -o $@ --modality text $(ENC) --force
$(PB)/%/image.emb.safetensors: $(PB)/%/dataset.jsonl
	$(MGR) embed $< -o $@ --modality image $(ENC) --force
$(PB)/%/fused.emb.safetensors: $(PB)/%/text.emb.safetensors $(PB)/%/image.emb.safetensors
	$(MGR) fuse $< $(word 2,$^) -o $@ --fusion $(FUSION) --force
$(PB)/%/textlm.emb.safetensors: $(PB)/%/dataset.jsonl
	$(MGR) embed $< -o $@ --modality text --text-model $(TEXT_LM) --pooling $(TEXT_LM_POOLING) --force

$(PB)/%.ids.safetensors: $(PB)/%.emb.safetensors
	$(MGR) quantize $< -o $@ $(CFG) --force
$(PB)/%/hc.ids.safetensors: $(PB)/%/text.emb.safetensors
	$(MGR) quantize $< -o $@ --method hierarchical $(CFG) --force
$(PB)/%/letter.ids.safetensors: $(PB)/%/text.emb.safetensors $(PB)/%/sasrec.emb.safetensors
	$(MGR) quantize $< -o $@ --method letter --collab $(word 2,$^) $(CFG) --force
define sweep_ids
$(PB)/%.$(1).ids.safetensors: $(PB)/%.emb.safetensors
	$(MGR) quantize $$< -o $$@ $(CFG) $(2) --force
endef
$(foreach L,$(SWEEP_LEVELS),$(eval $(call sweep_ids,L$(L),--levels $(L))))
$(foreach K,$(SWEEP_SIZES),$(eval $(call sweep_ids,K$(K),--codebook-size $(K))))

# IDs made elsewhere (Instruments: MQL4GRec's image- and text-derived IDs)
define imported_ids
$(PB)/$(1)/text.ids.safetensors: $(PB)/$(1)/dataset.jsonl $(TEXT_INDEX_$(1))
	$(MGR) ids import $(TEXT_INDEX_$(1)) --dataset $$< --modality text -o $$@ --force
$(PB)/$(1)/image.ids.safetensors: $(PB)/$(1)/dataset.jsonl $(IMAGE_INDEX_$(1))
	$(MGR) ids import $(IMAGE_INDEX_$(1)) --dataset $$< --modality image -o $$@ --force
endef
$(foreach d,$(ID_SETS),$(eval $(call imported_ids,$(d))))
$(PB)/demo/%.index.json: $(PB)/demo/%.ids.safetensors
	$(MGR) ids export $< -o $@ --force

$(PB)/%/table1.json $(PB)/%/figure4.png: $(PB)/%/text.ids.safetensors $(PB)/%/image.ids.safetensors $(PB)/%/fused.ids.safetensors
	$(MGR) analyze-ami --text $< --image $(word 2,$^) --fused $(word 3,$^) \
		$(if $(FIELD_$*),--field $(FIELD_$*)) --format json --sheet $(PB)/$*/figure4.png --force > $(PB)/$*/table1.json.tmp
	mv $(PB)/$*/table1.json.tmp $(PB)/$*/table1.json

# ---- stage 2: tokenize, align, train, evaluate (one <row>.tok per layout and IDs)
# history length per dataset (the rule's stem), where a profile sets one
MAX_HIST = $(if $(HISTORY_$*),--max-history $(HISTORY_$*))
$(PB)/%/tiger-text.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout tiger $(MAX_HIST) --force
$(PB)/%/tiger-textlm.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/textlm.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout tiger $(MAX_HIST) --force
$(PB)/%/tiger-image.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/image.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout tiger $(MAX_HIST) --force
$(PB)/%/letter.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/letter.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout tiger $(MAX_HIST) --force
$(PB)/%/hc.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/hc.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout tiger $(MAX_HIST) --force
$(PB)/%/mgr-ef.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/fused.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout ef $(MAX_HIST) --force
$(PB)/%/mgr-lf.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.ids.safetensors $(PB)/%/image.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout lf $(MAX_HIST) --force
$(PB)/%/mgr-lfpp.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.ids.safetensors $(PB)/%/image.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout lfpp $(MAX_HIST) --force
$(PB)/%/mgr-lf3.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.ids.safetensors $(PB)/%/image.ids.safetensors $(PB)/%/collab.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout lf $(MAX_HIST) --force
$(PB)/%/mgr-lfpp3.tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.ids.safetensors $(PB)/%/image.ids.safetensors $(PB)/%/collab.ids.safetensors
	$(MGR) tokenize $^ -o $@ --layout lfpp $(MAX_HIST) --force
define sweep_tok
$(PB)/%/mgr-lfpp.$(1).tok.safetensors: $(PB)/%/dataset.jsonl $(PB)/%/text.$(1).ids.safetensors $(PB)/%/image.$(1).ids.safetensors
	$(MGR) tokenize $$^ -o $$@ --layout lfpp $$(MAX_HIST) --force
endef
$(foreach t,$(SWEEPS),$(eval $(call sweep_tok,$(t))))

# <row>.run: next-item training; <row>.align: alignment pre-training; <row>+align.run:
# next-item training from the alignment checkpoint (the paper's staged recipe).
$(PB)/%.align/run.jsonl: $(PB)/%.tok.safetensors
	$(MGR) align $< -o $(@D) $(CFG) --force
$(PB)/%+align.run/run.jsonl: $(PB)/%.tok.safetensors $(PB)/%.align/run.jsonl
	$(MGR) train $< -o $(@D) $(CFG) --init $(dir $(word 2,$^)) --force
$(PB)/%.run/run.jsonl: $(PB)/%.tok.safetensors
	$(MGR) train $< -o $(@D) $(CFG) --force
$(PB)/%+align.eval/metrics.jsonl: $(PB)/%+align.run/run.jsonl $(PB)/%.tok.safetensors
	$(MGR) evaluate $(<D) $(word 2,$^) -o $(@D) $(CFG) --force
$(PB)/%.eval/metrics.jsonl: $(PB)/%.run/run.jsonl $(PB)/%.tok.safetensors
	$(MGR) evaluate $(<D) $(word 2,$^) -o $(@D) $(CFG) --force
# <row>.eval-<subset>: decoding only those modalities' IDs (Table 3; a+b: --modalities a,b)
comma := ,
define partial
$(PB)/%.eval-$(1)/metrics.jsonl: $(PB)/%.run/run.jsonl $(PB)/%.tok.safetensors
	$(MGR) evaluate $$(<D) $$(word 2,$$^) -o $$(@D) --modalities $(subst +,$(comma),$(1)) $(CFG) --force
$(PB)/%+align.eval-$(1)/metrics.jsonl: $(PB)/%+align.run/run.jsonl $(PB)/%.tok.safetensors
	$(MGR) evaluate $$(<D) $$(word 2,$$^) -o $$(@D) --modalities $(subst +,$(comma),$(1)) $(CFG) --force
endef
$(foreach s,$(SUBSETS3),$(eval $(call partial,$(s))))

# The floor: the training split's most popular items, for every user (no training)
$(PB)/%/popular.eval/metrics.jsonl: $(PB)/%/dataset.jsonl
	$(MGR) popular $< -o $(@D) $(CFG) --force

# SASRec (and its item embeddings, LETTER's collaborative side)
$(PB)/%/sasrec.run/run.jsonl: $(PB)/%/dataset.jsonl
	$(MGR) sasrec train $< -o $(@D) $(CFG) $(if $(HISTORY_$*),--max-len $(HISTORY_$*)) --force
$(PB)/%/sasrec.eval/metrics.jsonl: $(PB)/%/sasrec.run/run.jsonl $(PB)/%/dataset.jsonl
	$(MGR) sasrec evaluate $(<D) $(word 2,$^) -o $(@D) $(CFG) --force
$(PB)/%/sasrec.emb.safetensors: $(PB)/%/sasrec.run/run.jsonl $(PB)/%/dataset.jsonl
	$(MGR) sasrec embed $(<D) $(word 2,$^) -o $@ --force

# Beyond the paper: behaviour as a third modality. collab.run is SASRec on the training
# split only (--select last: the last epoch, no validation item read); its item table,
# quantized by the generic rule, is collab.ids. `make table5-three table3-three`.
$(PB)/%/collab.run/run.jsonl: $(PB)/%/dataset.jsonl
	$(MGR) sasrec train $< -o $(@D) --select last $(CFG) $(if $(HISTORY_$*),--max-len $(HISTORY_$*)) --force
$(PB)/%/collab.emb.safetensors: $(PB)/%/collab.run/run.jsonl $(PB)/%/dataset.jsonl
	$(MGR) sasrec embed $(<D) $(word 2,$^) -o $@ --force

# Every stage file named once as a prerequisite, so that none is "intermediate": GNU
# make 4.3 (no .NOTINTERMEDIATE) would otherwise delete the files its pattern rules make
# in passing, and not rebuild a deleted run, ID or tokenized file whose results are up
# to date. (Not `.SECONDARY:` without prerequisites: that makes every target
# intermediate, so a dataset added to an up-to-date table would never be built.)
# Never built itself.
STAGE_ROWS := tiger-text tiger-textlm tiger-image letter hc mgr-ef mgr-lf mgr-lfpp mgr-lf3 mgr-lfpp3 $(addprefix mgr-lfpp.,$(SWEEPS))
stage_files = $(foreach d,$(1),$(PB)/$(d)/dataset.jsonl $(PB)/$(d)/sasrec.run/run.jsonl \
	$(PB)/$(d)/sasrec.emb.safetensors $(PB)/$(d)/collab.run/run.jsonl $(PB)/$(d)/collab.emb.safetensors \
	$(PB)/$(d)/collab.ids.safetensors $(PB)/$(d)/hc.ids.safetensors $(PB)/$(d)/letter.ids.safetensors \
	$(foreach m,text image fused textlm,$(PB)/$(d)/$(m).emb.safetensors $(PB)/$(d)/$(m).ids.safetensors) \
	$(foreach m,text image,$(foreach t,$(SWEEPS),$(PB)/$(d)/$(m).$(t).ids.safetensors)) \
	$(foreach r,$(STAGE_ROWS),$(PB)/$(d)/$(r).tok.safetensors $(PB)/$(d)/$(r).run/run.jsonl \
		$(PB)/$(d)/$(r).align/run.jsonl $(PB)/$(d)/$(r)+align.run/run.jsonl))
.PHONY: _stage_files
_stage_files: $(call stage_files,$(sort $(MM_SETS) $(ID_SETS) $(TEXT_SETS) $(FIG6_SETS)))
.DELETE_ON_ERROR:
