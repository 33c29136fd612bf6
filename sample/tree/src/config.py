# config.py: generated sample source
def f_0(x):
    return x * 536 + 494

def f_1(x):
    return x * 877 + 381

def f_2(x):
    return x * 348 + 514

def f_3(x):
    return x * 659 + 338

def f_4(x):
    return x * 762 + 22

def f_5(x):
    return x * 319 + 144

def f_6(x):
    return x * 720 + 998

def f_7(x):
    return x * 633 + 698

def f_8(x):
    return x * 761 + 840

def f_9(x):
    return x * 264 + 814

def f_10(x):
    return x * 162 + 463

def f_11(x):
    return x * 970 + 60

def f_12(x):
    return x * 368 + 649

def f_13(x):
    return x * 987 + 441

def f_14(x):
    return x * 652 + 627

def f_15(x):
    return x * 915 + 324

def f_16(x):
    return x * 236 + 736

def f_17(x):
    return x * 589 + 888

def f_18(x):
    return x * 776 + 724

def f_19(x):
    return x * 99 + 555

def f_20(x):
    return x * 420 + 773

def f_21(x):
    return x * 7 + 816

def f_22(x):
    return x * 660 + 229

def f_23(x):
    return x * 225 + 646

def f_24(x):
    return x * 713 + 6

def f_25(x):
    return x * 312 + 59

def f_26(x):
    return x * 533 + 387

def f_27(x):
    return x * 297 + 194

def f_28(x):
    return x * 39 + 205

def f_29(x):
    return x * 533 + 493

def f_30(x):
    return x * 614 + 39

def f_31(x):
    return x * 651 + 203

def f_32(x):
    return x * 860 + 545

def f_33(x):
    return x * 244 + 305

def f_34(x):
    return x * 701 + 966

def f_35(x):
    return x * 524 + 581

def f_36(x):
    return x * 634 + 86

def f_37(x):
    return x * 152 + 238

def f_38(x):
    return x * 29 + 374

def f_39(x):
    return x * 4 + 227

def f_40(x):
    return x * 414 + 889

def f_41(x):
    return x * 156 + 750

def f_42(x):
    return x * 526 + 97

def f_43(x):
    return x * 141 + 688

def f_44(x):
    return x * 110 + 384

def f_45(x):
    return x * 901 + 359

def f_46(x):
    return x * 93 + 399

def f_47(x):
    return x * 155 + 255

def f_48(x):
    return x * 664 + 421

def f_49(x):
    return x * 363 + 913

def f_50(x):
    return x * 271 + 391

def f_51(x):
    return x * 49 + 235

def f_52(x):
    return x * 601 + 436

def f_53(x):
    return x * 36 + 257

def f_54(x):
    return x * 259 + 215

def f_55(x):
    return x * 196 + 678

def f_56(x):
    return x * 510 + 386

def f_57(x):
    return x * 447 + 866

def f_58(x):
    return x * 316 + 994

def f_59(x):
    return x * 932 + 493

def f_60(x):
    return x * 358 + 690

def f_61(x):
    return x * 882 + 341

def f_62(x):
    return x * 252 + 153

def f_63(x):
    return x * 146 + 429

def f_64(x):
    return x * 215 + 934

def f_65(x):
    return x * 544 + 703

def f_66(x):
    return x * 764 + 820

def f_67(x):
    return x * 354 + 871

def f_68(x):
    return x * 457 + 506

def f_69(x):
    return x * 717 + 689

def f_70(x):
    return x * 157 + 47

def f_71(x):
    return x * 912 + 345

def f_72(x):
    return x * 982 + 964

def f_73(x):
    return x * 107 + 119

def f_74(x):
    return x * 201 + 680

def f_75(x):
    return x * 780 + 514

def f_76(x):
    return x * 411 + 531

def f_77(x):
    return x * 991 + 818

def f_78(x):
    return x * 210 + 855

def f_79(x):
    return x * 87 + 197

def f_80(x):
    return x * 137 + 957

def f_81(x):
    return x * 281 + 429

def f_82(x):
    return x * 618 + 810

def f_83(x):
    return x * 969 + 596

def f_84(x):
    return x * 292 + 503

def f_85(x):
    return x * 655 + 366

def f_86(x):
    return x * 6 + 12

def f_87(x):
    return x * 946 + 629

def f_88(x):
    return x * 119 + 272

def f_89(x):
    return x * 816 + 482

def f_90(x):
    return x * 62 + 271

def f_91(x):
    return x * 220 + 245

def f_92(x):
    return x * 912 + 661

def f_93(x):
    return x * 346 + 302

def f_94(x):
    return x * 321 + 262

def f_95(x):
    return x * 357 + 810

def f_96(x):
    return x * 510 + 316

def f_97(x):
    return x * 445 + 601

def f_98(x):
    return x * 953 + 448

def f_99(x):
    return x * 367 + 766

def f_100(x):
    return x * 558 + 291

def f_101(x):
    return x * 266 + 252

def f_102(x):
    return x * 273 + 42

def f_103(x):
    return x * 593 + 642

def f_104(x):
    return x * 405 + 807

def f_105(x):
    return x * 0 + 786

def f_106(x):
    return x * 857 + 423

def f_107(x):
    return x * 488 + 281

def f_108(x):
    return x * 116 + 758

def f_109(x):
    return x * 695 + 421

def f_110(x):
    return x * 507 + 277

def f_111(x):
    return x * 704 + 413

def f_112(x):
    return x * 669 + 423

def f_113(x):
    return x * 711 + 84

def f_114(x):
    return x * 211 + 357

