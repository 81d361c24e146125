"""The paper's published numbers, and the names of the rows, sets and targets."""

PAPER_TABLE1 = {"Toys": [0.2765, 0.3892, 0.4829], "Beauty": [0.2920, 0.3937, 0.5539],
                "Sports": [0.3976, 0.5105, 0.6351]}
PAPER_TABLE2 = {"Toys": [0.3287, 0.3881, 0.4612], "Beauty": [0.4724, 0.4911, 0.4866],
                "Sports": [0.2775, 0.3675, 0.4584]}
PAPER_TABLE3 = {"Toys": [0.0598, 0.0495, 0.0482], "Beauty": [0.0505, 0.0417, 0.0336],
                "Sports": [0.0195, 0.0193, 0.0184]}
PAPER_TABLE5 = {  # row: {domain: (MRR, NDCG, Hits@5)}
    "letter": {"Toys": (0.0169, 0.0201, 0.0300), "Beauty": (0.0048, 0.0059, 0.0092), "Sports": (0.0018, 0.0023, 0.0036)},
    "hc": {"Toys": (0.0071, 0.0088, 0.0138), "Beauty": (0.0074, 0.0090, 0.0138), "Sports": (0.0029, 0.0036, 0.0055)},
    "sasrec": {"Toys": (0.0047, 0.0056, 0.0084), "Beauty": (0.0084, 0.0105, 0.0167), "Sports": (0.0036, 0.0042, 0.0059)},
    "tiger-textlm": {"Toys": (0.0173, 0.0212, 0.0331), "Beauty": (0.0077, 0.0101, 0.0173), "Sports": (0.0050, 0.0062, 0.0098)},
    "tiger-text": {"Toys": (0.0217, 0.0275, 0.0451), "Beauty": (0.0161, 0.0199, 0.0316), "Sports": (0.0103, 0.0127, 0.0203)},
    "tiger-image": {"Toys": (0.0198, 0.0245, 0.0389), "Beauty": (0.0143, 0.0177, 0.0283), "Sports": (0.0062, 0.0077, 0.0121)},
    "mgr-ef": {"Toys": (0.0231, 0.0294, 0.0486), "Beauty": (0.0150, 0.0187, 0.0298), "Sports": (0.0086, 0.0105, 0.0163)},
    "mgr-lf": {"Toys": (0.0220, 0.0284, 0.0482), "Beauty": (0.0169, 0.0210, 0.0336), "Sports": (0.0091, 0.0114, 0.0184)},
    "mgr-lfpp+align": {"Toys": (0.0280, 0.0349, 0.0562), "Beauty": (0.0176, 0.0216, 0.0334), "Sports": (0.0102, 0.0130, 0.0206)},
}
# Table 5's rows: (evaluation folder stem, label). The Makefile builds <set>/<stem>.eval/.
ROWS = [("popular", "Most popular (training split)"), ("sasrec", "SASRec"), ("tiger-textlm", "TIGER (text LM)"), ("tiger-text", "TIGER (text)"),
        ("tiger-image", "TIGER (image)"), ("letter", "LETTER"), ("hc", "HC-indexer"),
        ("mgr-ef", "MGR-EF"), ("mgr-lf", "MGR-LF"), ("mgr-lfpp+align", "MGR-LF++")]
ABLATION = [("mgr-lf", "neither"), ("mgr-lfpp", "special tokens only"),
            ("mgr-lf+align", "alignment only"), ("mgr-lfpp+align", "both (MGR-LF++)")]
SETS = {"hm": "H&M (product photos + text)", "movielens": "MovieLens-100K (posters + plots)",
        "instruments": "Amazon 2018 Instruments (MQL4GRec's image- and text-derived IDs)",
        "beauty": "Amazon 2014 Beauty (text only)", "demo": "generated demo catalogue"}
TARGETS = ("table1", "table2", "table3", "table5", "fig4", "fig5", "fig6")
