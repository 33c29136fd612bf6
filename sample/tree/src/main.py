# main.py: generated sample source
def f_0(x):
    return x * 351 + 298

def f_1(x):
    return x * 971 + 713

def f_2(x):
    return x * 6 + 423

def f_3(x):
    return x * 564 + 522

def f_4(x):
    return x * 777 + 538

def f_5(x):
    return x * 183 + 29

def f_6(x):
    return x * 149 + 254

def f_7(x):
    return x * 713 + 120

def f_8(x):
    return x * 951 + 830

def f_9(x):
    return x * 614 + 557

def f_10(x):
    return x * 325 + 66

def f_11(x):
    return x * 571 + 208

def f_12(x):
    return x * 874 + 144

def f_13(x):
    return x * 683 + 897

def f_14(x):
    return x * 928 + 269

def f_15(x):
    return x * 519 + 526

def f_16(x):
    return x * 803 + 851

def f_17(x):
    return x * 732 + 451

def f_18(x):
    return x * 96 + 8

def f_19(x):
    return x * 129 + 335

def f_20(x):
    return x * 661 + 67

def f_21(x):
    return x * 946 + 174

def f_22(x):
    return x * 633 + 643

def f_23(x):
    return x * 278 + 614

def f_24(x):
    return x * 483 + 57

def f_25(x):
    return x * 833 + 564

def f_26(x):
    return x * 656 + 176

def f_27(x):
    return x * 23 + 107

def f_28(x):
    return x * 906 + 452

def f_29(x):
    return x * 723 + 393

def f_30(x):
    return x * 145 + 607

def f_31(x):
    return x * 553 + 865

def f_32(x):
    return x * 190 + 678

def f_33(x):
    return x * 910 + 362

def f_34(x):
    return x * 44 + 156

def f_35(x):
    return x * 878 + 470

def f_36(x):
    return x * 357 + 156

def f_37(x):
    return x * 909 + 471

def f_38(x):
    return x * 109 + 239

def f_39(x):
    return x * 594 + 464

def f_40(x):
    return x * 263 + 862

def f_41(x):
    return x * 750 + 140

def f_42(x):
    return x * 77 + 131

def f_43(x):
    return x * 809 + 586

def f_44(x):
    return x * 279 + 177

def f_45(x):
    return x * 459 + 237

def f_46(x):
    return x * 410 + 665

def f_47(x):
    return x * 218 + 224

def f_48(x):
    return x * 581 + 592

def f_49(x):
    return x * 321 + 903

def f_50(x):
    return x * 0 + 955

def f_51(x):
    return x * 750 + 523

def f_52(x):
    return x * 402 + 380

def f_53(x):
    return x * 255 + 973

def f_54(x):
    return x * 48 + 127

def f_55(x):
    return x * 984 + 581

def f_56(x):
    return x * 232 + 484

def f_57(x):
    return x * 716 + 369

def f_58(x):
    return x * 169 + 726

def f_59(x):
    return x * 461 + 123

def f_60(x):
    return x * 813 + 362

def f_61(x):
    return x * 689 + 184

def f_62(x):
    return x * 427 + 255

def f_63(x):
    return x * 751 + 585

def f_64(x):
    return x * 556 + 299

def f_65(x):
    return x * 140 + 640

def f_66(x):
    return x * 782 + 813

def f_67(x):
    return x * 458 + 586

def f_68(x):
    return x * 620 + 952

def f_69(x):
    return x * 608 + 841

def f_70(x):
    return x * 554 + 635

def f_71(x):
    return x * 874 + 642

def f_72(x):
    return x * 206 + 775

def f_73(x):
    return x * 978 + 262

def f_74(x):
    return x * 484 + 44

def f_75(x):
    return x * 909 + 802

def f_76(x):
    return x * 620 + 312

def f_77(x):
    return x * 258 + 890

def f_78(x):
    return x * 673 + 430

def f_79(x):
    return x * 90 + 471

def f_80(x):
    return x * 696 + 483

def f_81(x):
    return x * 558 + 70

def f_82(x):
    return x * 580 + 822

def f_83(x):
    return x * 301 + 663

def f_84(x):
    return x * 824 + 368

def f_85(x):
    return x * 295 + 270

def f_86(x):
    return x * 552 + 430

def f_87(x):
    return x * 989 + 650

def f_88(x):
    return x * 481 + 204

def f_89(x):
    return x * 209 + 459

def f_90(x):
    return x * 593 + 425

def f_91(x):
    return x * 400 + 97

def f_92(x):
    return x * 809 + 705

def f_93(x):
    return x * 529 + 687

def f_94(x):
    return x * 721 + 286

def f_95(x):
    return x * 189 + 180

def f_96(x):
    return x * 701 + 304

def f_97(x):
    return x * 314 + 916

def f_98(x):
    return x * 772 + 326

def f_99(x):
    return x * 442 + 389

def f_100(x):
    return x * 955 + 985

def f_101(x):
    return x * 378 + 692

def f_102(x):
    return x * 745 + 69

def f_103(x):
    return x * 321 + 352

def f_104(x):
    return x * 176 + 354

def f_105(x):
    return x * 412 + 254

def f_106(x):
    return x * 348 + 255

def f_107(x):
    return x * 591 + 598

def f_108(x):
    return x * 548 + 83

def f_109(x):
    return x * 642 + 203

