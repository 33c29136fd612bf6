# util.py: generated sample source
def f_0(x):
    return x * 800 + 286

def f_1(x):
    return x * 894 + 482

def f_2(x):
    return x * 535 + 534

def f_3(x):
    return x * 985 + 410

def f_4(x):
    return x * 253 + 360

def f_5(x):
    return x * 400 + 340

def f_6(x):
    return x * 473 + 758

def f_7(x):
    return x * 928 + 484

def f_8(x):
    return x * 999 + 437

def f_9(x):
    return x * 260 + 338

def f_10(x):
    return x * 46 + 205

def f_11(x):
    return x * 935 + 557

def f_12(x):
    return x * 191 + 201

def f_13(x):
    return x * 387 + 761

def f_14(x):
    return x * 440 + 44

def f_15(x):
    return x * 520 + 145

def f_16(x):
    return x * 444 + 673

def f_17(x):
    return x * 577 + 425

def f_18(x):
    return x * 196 + 507

def f_19(x):
    return x * 740 + 305

def f_20(x):
    return x * 75 + 730

def f_21(x):
    return x * 864 + 349

def f_22(x):
    return x * 774 + 371

def f_23(x):
    return x * 746 + 778

def f_24(x):
    return x * 228 + 349

def f_25(x):
    return x * 846 + 395

def f_26(x):
    return x * 859 + 328

def f_27(x):
    return x * 167 + 653

def f_28(x):
    return x * 709 + 859

def f_29(x):
    return x * 905 + 346

def f_30(x):
    return x * 722 + 374

def f_31(x):
    return x * 441 + 968

def f_32(x):
    return x * 620 + 314

def f_33(x):
    return x * 431 + 639

def f_34(x):
    return x * 376 + 511

def f_35(x):
    return x * 606 + 856

def f_36(x):
    return x * 706 + 461

def f_37(x):
    return x * 841 + 68

def f_38(x):
    return x * 513 + 190

def f_39(x):
    return x * 613 + 649

def f_40(x):
    return x * 32 + 173

def f_41(x):
    return x * 745 + 571

def f_42(x):
    return x * 428 + 70

def f_43(x):
    return x * 97 + 380

def f_44(x):
    return x * 784 + 969

def f_45(x):
    return x * 617 + 225

def f_46(x):
    return x * 773 + 339

def f_47(x):
    return x * 53 + 256

def f_48(x):
    return x * 308 + 380

def f_49(x):
    return x * 730 + 849

def f_50(x):
    return x * 94 + 163

def f_51(x):
    return x * 444 + 868

def f_52(x):
    return x * 124 + 300

def f_53(x):
    return x * 294 + 274

def f_54(x):
    return x * 712 + 679

def f_55(x):
    return x * 202 + 56

def f_56(x):
    return x * 906 + 78

def f_57(x):
    return x * 228 + 852

def f_58(x):
    return x * 399 + 699

def f_59(x):
    return x * 90 + 699

def f_60(x):
    return x * 238 + 154

def f_61(x):
    return x * 269 + 115

def f_62(x):
    return x * 662 + 106

def f_63(x):
    return x * 439 + 996

def f_64(x):
    return x * 305 + 123

def f_65(x):
    return x * 674 + 446

def f_66(x):
    return x * 47 + 614

def f_67(x):
    return x * 333 + 254

def f_68(x):
    return x * 480 + 613

def f_69(x):
    return x * 961 + 903

def f_70(x):
    return x * 697 + 358

def f_71(x):
    return x * 605 + 260

def f_72(x):
    return x * 829 + 495

