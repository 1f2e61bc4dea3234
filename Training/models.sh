# The nine models of a full training, "NAME TRAIN.PY-FLAGS" each; sourced by run_all.sh and gpu.sh.
#   loco-tess, loco-savee, loco-urdu  one corpus held out each (leave one corpus out)
#   final                             every clip: the shipped model
#   fold1..fold5                      RAVDESS actors 01-04 ... 17-20 held out, the other corpora included
MODELS=("loco-tess --corpus tess" "loco-savee --corpus savee" "loco-urdu --corpus urdu" "final --final"
        "fold1 --fold 1" "fold2 --fold 2" "fold3 --fold 3" "fold4 --fold 4" "fold5 --fold 5")
