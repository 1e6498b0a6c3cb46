from django import forms

from orders.models import Order


class OrderForm(forms.ModelForm):
    quantity = forms.IntegerField(min_value=1, max_value=99, error_messages={
        "min_value": "Order at least one.", "max_value": "At most 99 at a time, please."})

    class Meta:
        model = Order
        fields = ["email", "item", "quantity"]
